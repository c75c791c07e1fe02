fn main() {
    println!("sesr trainer: see `cargo run -p trainer -- --help` once the trainer lands");
}
