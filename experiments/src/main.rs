//! experiments: placeholder until the experiment runner issue lands.
fn main() {
    eprintln!("experiments: not implemented yet; see the project issues");
    std::process::exit(2);
}
