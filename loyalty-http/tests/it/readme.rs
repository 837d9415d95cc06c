//! The README's curl tour, run word for word (with the server's address swapped in) against
//! the real server, so that the tour cannot rot.

use crate::harness::*;
use loyalty_core::Limits;
use loyalty_http::HttpConfig;

fn tour_script() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("## A tour with curl")
        .expect("the README has a tour");
    let block = &readme[start..];
    let open = block.find("```sh\n").unwrap() + "```sh\n".len();
    let close = block[open..].find("```").unwrap();
    block[open..open + close].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_works_word_for_word() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("the README tour needs curl on the PATH");
    }
    let server =
        TestServer::start_with_config(Limits::default(), HttpConfig::new("change-me-root-token"))
            .await;
    let script = tour_script();
    assert!(script.contains("API=http://127.0.0.1:8080"));
    let script = script.replace("API=http://127.0.0.1:8080", &format!("API={}", server.base));
    let dir = std::env::temp_dir().join(format!("loyalty-tour-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = tokio::process::Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the tour failed:\n{stdout}\n{stderr}"
    );
    // Three rules created, three events accepted for 10 points each (one per scheme).
    assert_eq!(
        stdout.matches("\"name\":\"Sport readers\"").count(),
        3,
        "{stdout}"
    );
    assert_eq!(
        stdout
            .matches("\"status\":\"accepted\",\"eventId\"")
            .count(),
        7,
        "{stdout}"
    );
    assert!(
        stdout.contains("\"reason\":\"missing_identifier\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"status\":\"duplicate\""), "{stdout}");
    assert!(
        stdout.contains("\"balance\":30"),
        "ann has 10 points from each connector: {stdout}"
    );
    assert!(stdout.contains("\"type\":\"ledger\""), "{stdout}");
    assert!(
        stdout.contains("limit reached: 1 award(s) per day"),
        "the simulation with a candidate mapping explains itself: {stdout}"
    );
    assert!(
        stdout.contains("{\"events\":1,\"ledgerEntries\":1,\"members\":1}"),
        "{stdout}"
    );
    // The Shopify order, signed with openssl, earns a point a euro; half of it refunded takes
    // back half its points, rounded down.
    assert!(stdout.contains("\"points\":59,\"awards\""), "{stdout}");
    assert!(stdout.contains("\"points\":-29,\"reversed\""), "{stdout}");
    // The mapping fix: the rejected item grouped in the quarantine, then a dry run and an
    // applied replay that gives Cy her 10 points.
    assert!(
        stdout.contains(
            "\"status\":\"rejected\",\"code\":\"validation_failed\",\"path\":\"/payload/counters/0/value\",\"count\":1"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("\"applied\":false"), "{stdout}");
    assert!(stdout.contains("\"applied\":true"), "{stdout}");
    assert!(stdout.contains("\"balance\":10,"), "{stdout}");
    assert!(
        !stdout.contains("\"status\":4"),
        "no error answers: {stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
