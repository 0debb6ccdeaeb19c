//! Secrets end to end: a plan holds placeholders, the launcher fills them in from its own
//! environment, the backend gets the values, and nothing the launcher shows (the spec of a
//! process, its output lines) holds them. One test in its own binary: it sets variables of
//! this process's environment, which no other thread may be reading meanwhile.
#![cfg(unix)]

use std::collections::BTreeMap;

use inferkit_core::secret;
use inferkit_core::{Error, LaunchSpec, ProcessRole};
use inferkit_launch::Launcher;

const STANDIN: &str = env!("CARGO_BIN_EXE_inferkit-standin");

fn backend(report: &str) -> LaunchSpec {
    let mut spec = {
        let mut process = LaunchSpec::new(
            "worker-0",
            ProcessRole::Main,
            STANDIN,
            [
                "--port",
                "0",
                "--report",
                report,
                "--echo-args",
                "--",
                "--api-key",
                "sk-X",
            ]
            .map(String::from)
            .to_vec(),
        );
        process.env = BTreeMap::from([("STANDIN_TOKEN".to_string(), "tok-Y".to_string())]);
        process
    };
    // What the planner does to every process of a plan.
    let notes = secret::redact(&mut spec, None);
    assert_eq!(notes.len(), 2, "{notes:?}");
    spec
}

#[tokio::test]
async fn secrets_travel_by_the_environment_and_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.txt");
    let spec = backend(report.to_str().unwrap());
    let shown = serde_json::to_string(&spec).unwrap();
    assert!(
        !shown.contains("sk-X") && !shown.contains("tok-Y"),
        "{shown}"
    );
    assert!(shown.contains("${INFERKIT_API_KEY}") && shown.contains("${STANDIN_TOKEN}"));

    // Not set: refused before anything starts, naming the variable.
    let run = dir.path().join("run");
    match Launcher::default()
        .start(vec![spec.clone()], &run)
        .await
        .unwrap_err()
    {
        Error::InvalidParameter { name, .. } => {
            assert!(
                ["INFERKIT_API_KEY", "STANDIN_TOKEN"].contains(&name.as_str()),
                "{name}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(!report.exists(), "nothing started");

    // SAFETY: this binary runs this one test; no other thread reads the environment now.
    unsafe {
        std::env::set_var("INFERKIT_API_KEY", "sk-from-env");
        std::env::set_var("STANDIN_TOKEN", "tok-from-env");
    }
    let supervisor = Launcher::default().start(vec![spec], &run).await.unwrap();
    supervisor.wait_ready().await.unwrap();
    let main = supervisor.main().unwrap().clone();
    for _ in 0..500 {
        if report.exists() && !main.last_lines().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reported = std::fs::read_to_string(&report).unwrap();
    assert!(reported.contains("arg=sk-from-env"), "{reported}");
    assert!(
        reported.contains("env=STANDIN_TOKEN=tok-from-env"),
        "{reported}"
    );
    let handle = serde_json::to_string(main.spec()).unwrap();
    assert!(!handle.contains("from-env"), "{handle}");
    let echoed = main.last_lines().join("\n");
    assert!(echoed.contains("${INFERKIT_API_KEY}"), "{echoed}");
    assert!(!echoed.contains("sk-from-env"), "{echoed}");
    supervisor.stop().await;
}
