fn main() {
    eprintln!("sapphire-ctl: not built yet");
    std::process::exit(1);
}
