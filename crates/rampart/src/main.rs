//! `rampart`: the one binary. Server, client commands and the regex tester.

fn main() {
    println!("rampart {}", env!("CARGO_PKG_VERSION"));
}
