//! `include/auditbuf.h` is what cbindgen makes of this crate, byte for byte: this test
//! regenerates it and fails when the committed header differs. To update the header after
//! changing the ABI: `AUDITBUF_BLESS=1 cargo test -p auditbuf-ffi --test header`.

use std::path::Path;

#[test]
fn committed_header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("ffi/cbindgen.toml: {e}"));
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen: {e}"))
        .write(&mut generated);
    let path = crate_dir.join("../include/auditbuf.h");
    if std::env::var_os("AUDITBUF_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/auditbuf.h is stale: run `AUDITBUF_BLESS=1 cargo test -p auditbuf-ffi --test header` and commit it"
    );
}
