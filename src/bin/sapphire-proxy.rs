fn main() {
    eprintln!("sapphire-proxy: not built yet");
    std::process::exit(1);
}
