fn main() {
    eprintln!("ngmixit: not implemented yet");
    std::process::exit(1);
}
