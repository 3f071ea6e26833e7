//! The memory store against the contract every store meets.

mod common;

store_contract!(durable: false, open: |_scope: &Path, max_bytes: Option<u64>| -> Box<dyn Store> {
    let config = auditbuf::MemoryStoreConfig::default();
    let config = match max_bytes {
        Some(b) => config.max_bytes(b),
        None => config,
    };
    Box::new(auditbuf::MemoryStore::new(config))
});
