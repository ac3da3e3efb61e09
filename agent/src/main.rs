fn main() {
    println!("bpc-agent: not yet implemented");
}
