//! Build script for the backend's libpurple binding.
//!
//! * Generates Rust declarations for libpurple 2.14 from `<purple.h>` with
//!   bindgen at build time (decision: generated, not committed, so the
//!   structs always match the installed headers and bindgen's layout tests
//!   check them; the cost is a build-time dependency on libclang-dev, listed
//!   in scripts/apt-packages-build). GLib types are not generated: they come
//!   from the glib-sys/gobject-sys crates.
//! * Compiles the small C shim (`csrc/shim.c`) that turns libpurple's
//!   `va_list` request callbacks into plain arrays for Rust.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/purple-wrapper.h");
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=build.rs");

    let purple = pkg_config::Config::new()
        .atleast_version("2.14")
        .probe("purple")
        .expect("libpurple-dev (pkg-config name 'purple') >= 2.14 is required");

    let mut shim = cc::Build::new();
    shim.file("csrc/shim.c").warnings(true);
    for inc in &purple.include_paths {
        shim.include(inc);
    }
    shim.compile("sapphire_purple_shim");

    let mut builder = bindgen::Builder::default()
        .header("csrc/purple-wrapper.h")
        .allowlist_function("purple_.*")
        .allowlist_function("serv_.*")
        .allowlist_function("xmlnode_(get_child|get_child_with_namespace|get_data)")
        .allowlist_function("sapphire_request_(choice|action|action_with_icon)")
        .allowlist_type("Purple.*")
        .allowlist_type("SapphireRequest(Choice|Action)Rs")
        .allowlist_var("PURPLE_.*")
        // GLib and GObject types come from glib-sys / gobject-sys.
        .blocklist_type("_?G[A-Z].*")
        .blocklist_type("g[a-z0-9]+")
        .blocklist_function("g_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for inc in &purple.include_paths {
        builder = builder.clang_arg(format!("-I{}", inc.display()));
    }
    let bindings = builder
        .generate()
        .expect("bindgen could not generate the libpurple binding");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("purple.rs");
    bindings
        .write_to_file(out)
        .expect("could not write the libpurple binding");
}
