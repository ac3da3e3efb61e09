fn main() {
    println!("kubectl-bpc: not yet implemented");
}
