//! loadgen: placeholder until the load generator issue lands (see issue "loadgen").
fn main() {
    eprintln!("loadgen: not implemented yet; see the project issues");
    std::process::exit(2);
}
