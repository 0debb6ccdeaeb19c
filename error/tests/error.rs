//! The error keeps its cause, names its kind, and keeps its JSON form.

use std::error::Error as _;
use std::io;

use inferkit_error::{Candidate, DeviceRef, Error, ErrorKind, Rejection};
use serde_json::json;

const MISSING: &str = "/nonexistent/inferkit/config.json";

fn not_found() -> Error {
    Error::io(MISSING, std::fs::metadata(MISSING).unwrap_err())
}

/// The operating system's own words for a missing file.
fn not_found_message() -> String {
    std::fs::metadata(MISSING).unwrap_err().to_string()
}

#[test]
fn io_errors_keep_the_operating_system_error_as_their_source() {
    let err = not_found();
    let source = err.source().expect("an io error has a source");
    assert_eq!(source.to_string(), not_found_message());
    let Error::Io { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(source.kind(), io::ErrorKind::NotFound);
    // Cloning shares the source instead of dropping it.
    let Error::Io { source: cloned, .. } = err.clone() else {
        unreachable!()
    };
    assert_eq!(cloned.kind(), io::ErrorKind::NotFound);
}

#[test]
fn io_errors_serialise_their_message_as_before() {
    let err = not_found();
    let value = serde_json::to_value(&err).unwrap();
    assert_eq!(
        value,
        json!({
            "kind": "io",
            "path": MISSING,
            "message": not_found_message(),
        })
    );
    let back: Error = serde_json::from_value(value).unwrap();
    assert_eq!(back.to_string(), err.to_string());
    assert_eq!(back, err);
}

#[test]
fn every_kind_has_the_name_of_its_json_tag() {
    let errors = [
        Error::parse("m.gguf", 8, "bad magic"),
        not_found(),
        Error::unsupported("no GPU"),
        Error::invalid_parameter("--ctx-size", "not a number"),
        Error::DoesNotFit {
            needed: 2,
            available: 1,
            reason: "weights".into(),
        },
        Error::NoPlacement {
            reason: "nothing fits".into(),
            explanation: vec![],
            rejected: vec![Rejection::new(
                Candidate::Devices {
                    devices: vec![DeviceRef {
                        worker: "w1".into(),
                        index: 0,
                    }],
                },
                "too small",
            )],
        },
        Error::Probe {
            probe: "nvml".into(),
            reason: "garbled".into(),
        },
        Error::Process {
            name: "main".into(),
            reason: "crashed".into(),
        },
    ];
    let kinds: Vec<ErrorKind> = errors.iter().map(Error::kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::Parse,
            ErrorKind::Io,
            ErrorKind::Unsupported,
            ErrorKind::InvalidParameter,
            ErrorKind::DoesNotFit,
            ErrorKind::NoPlacement,
            ErrorKind::Probe,
            ErrorKind::Process,
        ]
    );
    for (err, kind) in errors.iter().zip(kinds) {
        let value = serde_json::to_value(err).unwrap();
        assert_eq!(value["kind"], kind.as_str(), "{value}");
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        let back: Error = serde_json::from_value(value).unwrap();
        assert_eq!(&back, err);
    }
}

#[test]
fn io_errors_are_equal_by_path_and_message() {
    let a = Error::io_with("a", io::ErrorKind::NotFound, "missing");
    assert_eq!(a, Error::io_with("a", io::ErrorKind::NotFound, "missing"));
    assert_ne!(a, Error::io_with("b", io::ErrorKind::NotFound, "missing"));
    assert_ne!(a, Error::io_with("a", io::ErrorKind::NotFound, "gone"));
    assert_ne!(a, Error::parse("a", 0, "missing"));
}

#[test]
fn an_unsupported_error_is_a_tagged_object_with_its_reason() {
    let err = Error::unsupported("vLLM needs at least one GPU");
    let value = serde_json::to_value(&err).unwrap();
    assert_eq!(
        value,
        json!({"kind": "unsupported", "reason": "vLLM needs at least one GPU"})
    );
    assert_eq!(err.to_string(), "unsupported: vLLM needs at least one GPU");
    assert_eq!(serde_json::from_value::<Error>(value).unwrap(), err);
}

#[test]
fn a_rejection_keeps_its_sentence_as_candidate_and_the_typed_option_beside_it() {
    let rejection = Rejection::new(
        Candidate::Device {
            device: DeviceRef {
                worker: "w1".into(),
                index: 0,
            },
            name: "NVIDIA GeForce RTX 4090".into(),
            allocatable: 21 << 30 | 1 << 29,
        },
        "weights: needs 30.00 GiB, 21.50 GiB available",
    )
    .with_alike(3);
    let value = serde_json::to_value(&rejection).unwrap();
    assert_eq!(
        value,
        json!({
            "candidate": "w1:0 (NVIDIA GeForce RTX 4090, 21.50 GiB allocatable) and 3 alike \
                          with less free memory",
            "option": {"kind": "device", "device": {"worker": "w1", "index": 0},
                       "name": "NVIDIA GeForce RTX 4090", "allocatable": 23085449216u64},
            "alike": 3,
            "reason": "weights: needs 30.00 GiB, 21.50 GiB available",
        })
    );
    assert_eq!(
        serde_json::from_value::<Rejection>(value).unwrap(),
        rejection
    );
}

#[test]
fn a_long_list_of_refused_workers_is_cut_in_its_sentence_only() {
    let names: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    let many = Candidate::Workers {
        names: names.clone(),
    };
    assert_eq!(many.to_string(), "w0, w1, w2, w3, w4 and 3 more");
    let Candidate::Workers { names: kept } = &many else {
        unreachable!()
    };
    assert_eq!(kept, &names);
    let two = Candidate::Workers {
        names: names[..2].to_vec(),
    };
    assert_eq!(two.to_string(), "w0, w1");
}
