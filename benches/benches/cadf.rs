//! One thread calling `record_cadf` into a null sink: what a full CADF event costs the
//! caller — checking every field, escaping it into a pooled slot, and, when the event has
//! none, generating its UUID and `eventTime`.

use std::hint::black_box;
use std::time::Duration;

use auditbuf::{
    CadfAddress, CadfAttachment, CadfContent, CadfEvent, CadfHost, CadfReason, CadfResource,
    Config, NullSink, Pipeline,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const ADDRESSES: [CadfAddress<'static>; 1] = [CadfAddress {
    url: "https://keystone.example.com/v3",
    name: Some("public"),
}];

const ATTACHMENTS: [CadfAttachment<'static>; 1] = [CadfAttachment {
    name: Some("payload"),
    type_uri: "mime:application/json",
    content: CadfContent::Json(r#"{"flavor":"m1.small","count":2}"#),
}];

/// Every part of the event and of a resource, as an OpenStack API behind audittools fills
/// them: 1.2 KB on the wire.
fn full(id: Option<&'static str>, time: Option<&'static str>) -> CadfEvent<'static> {
    CadfEvent {
        id,
        event_time: time,
        reason: Some(CadfReason {
            reason_type: Some("HTTP"),
            reason_code: Some("201"),
        }),
        initiator: CadfResource {
            name: Some("ada"),
            domain: Some("Default"),
            addresses: &ADDRESSES,
            host: Some(CadfHost {
                id: None,
                address: Some("10.0.0.7"),
                agent: Some("python-openstackclient/6.0"),
                platform: Some("linux"),
            }),
            project_id: Some("e9141fb24eee4b3e9f25ae69cda31132"),
            domain_id: Some("default"),
            project_name: Some("payments"),
            project_domain_name: Some("Default"),
            domain_name: Some("Default"),
            app_credential_id: Some("ac-31"),
            ..CadfResource::new(
                "service/security/account/user",
                "4b3a9c7e0d2f4e1a8b6c5d4e3f2a1b0c",
            )
        },
        target: CadfResource {
            name: Some("web-1"),
            project_id: Some("e9141fb24eee4b3e9f25ae69cda31132"),
            ..CadfResource::new("compute/server", "7f8e3a52-9c1d-4b7e-a0f4-2d6c8e1b3a95")
        },
        observer: CadfResource {
            name: Some("nova"),
            ..CadfResource::new("service/compute", "nova-api-01")
        },
        attachments: &ATTACHMENTS,
        request_path: Some("/v2.1/servers/7f8e3a52-9c1d-4b7e-a0f4-2d6c8e1b3a95/action"),
        ..CadfEvent::new(
            "update/resize",
            "success",
            CadfResource::default(),
            CadfResource::default(),
            CadfResource::default(),
        )
    }
}

fn cadf(c: &mut Criterion) {
    let mut group = c.benchmark_group("cadf");
    group.throughput(Throughput::Elements(1));
    for (name, event) in [
        ("record_full_generated_id_and_time", full(None, None)),
        (
            "record_full_given_id_and_time",
            full(
                Some("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
                Some("2026-11-23T10:15:30.123456+00:00"),
            ),
        ),
    ] {
        // Slots sized for a 1 KB event: with the default 512 bytes, a slot grown for one is
        // shrunk again on return once the free slots hold over 2 MiB extra between them,
        // and every event would pay a reallocation.
        let p = Pipeline::new(Config::default().initial_slot_bytes(2048), NullSink).unwrap();
        group.bench_function(name, |b| b.iter(|| p.record_cadf(black_box(&event))));
        let report = p.close(Duration::from_secs(10));
        let full = report.stats.rejected.queue_full;
        if full > 0 {
            eprintln!("{name}: {full} calls found the queue full (not counted as faster calls)");
        }
    }
    group.finish();
}

criterion_group!(benches, cadf);
criterion_main!(benches);
