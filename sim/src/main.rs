fn main() {
    println!("bpc-sim: not yet implemented");
}
