fn main() {
    eprintln!("sapphire-backend: not built yet");
    std::process::exit(1);
}
