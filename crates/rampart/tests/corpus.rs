//! fail2ban's annotated sample logs, run through fail2ban's own filters with rampart's
//! engine under the rules of fail2ban's harness. Every check must pass.

use rampart::corpus;

#[test]
fn fail2ban_corpus_with_fail2ban_filters() {
    let reference = rampart_reference::fail2ban();
    let config = reference.config_dir();
    let samples = reference.sample_logs_dir();
    let names = corpus::filter_names(&config, None).expect("listing filter.d");
    assert!(
        names.len() >= 80,
        "only {} filters found in {}",
        names.len(),
        config.display()
    );
    let results: Vec<corpus::FilterResult> = names
        .iter()
        .filter(|n| corpus::sample_path(&samples, n).is_file())
        .map(|n| corpus::check_filter(n, &config, &samples))
        .collect();
    let report = corpus::report(&results);
    println!("{report}");
    let checks: usize = results.iter().map(|r| r.checks).sum();
    assert!(checks > 1000, "only {checks} checks ran");
    assert!(results.iter().all(corpus::FilterResult::ok), "{report}");
}
