//! sapphire-proxy: the public TLS edge of Sapphire.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Parser;
use sapphire::proxy::config::{Args, Config};
use sapphire::proxy::{demo, Proxy};

fn main() -> Result<()> {
    sapphire::logging::init();
    let args = Args::parse();
    let (config, demo_password) = if args.demo {
        let d = demo::prepare(&args).context("preparing the demo")?;
        (d.config, Some(d.password))
    } else {
        (Config::from_args(&args)?, None)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let proxy = Proxy::new(config)?;
        let addr = proxy.local_addrs().first().copied();
        proxy
            .run(|| {
                if let (Some(password), Some(addr)) = (demo_password, addr) {
                    // Whoever reads this may go away: a closed stdout is no
                    // reason to stop.
                    let _ = write!(
                        std::io::stdout(),
                        "Sapphire demo is running. Open the url in a browser and accept its \
                         self-signed certificate.\n\
                         url: https://{addr}/\n\
                         user: {}\n\
                         password: {password}\n\
                         Stop it with Ctrl-C; run the same command again to reuse this state.\n",
                        demo::DEMO_USER
                    );
                }
            })
            .await?;
        Ok(())
    })
}
