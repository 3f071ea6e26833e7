package auditbuf

// The package links ../target/release/libauditbuf_ffi.a; `go generate` builds it (as
// `make -C go lib` does).
//go:generate sh -c "cd .. && CARGO_TARGET_DIR=target cargo build --release -p auditbuf-ffi"
