//! `backend_suite!`: everything a backend's test file runs against the shared suites, in one
//! macro call.
//!
//! A new backend's test file is a [`Fixture`](crate::conformance::Fixture) impl plus:
//!
//! ```ignore
//! crate::backend_suite! {
//!     fixture: MyFixture,
//!     name: "mine",
//!     engine: engine_with_mine_as_default,
//!     differential: { rows: 300, share: Some(0.8) },
//! }
//! ```
//!
//! which expands, in the calling module, to:
//! - `mod conformance`: one test per scenario of `all_scenarios!` on collections from `fixture`;
//! - `slt`: every `.slt` file ([`crate::slt::run_all`]) on fresh engines from `engine` (an async
//!   fn or a closure returning a future of an [`Engine`](dataknobs::Engine) whose default
//!   backend is the backend under test), labelled `name` for `skipif`/`onlyif`;
//! - `differential`: [`crate::differential::run_for_backend`] with `rows` seeded rows, checking
//!   the results and, when `share` is `Some(bar)`, that at least that share of the generated
//!   WHEREs was pushed completely (`None`: results only, for backends whose scans DataFusion
//!   itself prunes). An optional `check: |outcome| { … }` after `share` runs backend-specific
//!   assertions on the [`Outcome`](crate::differential::Outcome).
//!
//! `fixture`, `name` and `engine` are evaluated in the calling module (`name` may be a `&str`
//! or a `String`).

/// See the module documentation.
#[macro_export]
macro_rules! backend_suite {
    (
        fixture: $fixture:expr,
        name: $name:expr,
        engine: $engine:expr,
        differential: {
            rows: $rows:expr,
            share: $share:expr
            $(, check: |$outcome:ident| $check:block)?
            $(,)?
        }
        $(,)?
    ) => {
        /// The fixture the conformance scenarios get (evaluated here, in the backend's module).
        fn suite_fixture() -> impl $crate::conformance::Fixture {
            $fixture
        }

        mod conformance {
            $crate::all_scenarios!($crate::conformance_suite; super::suite_fixture());
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn slt() {
            let name = ::std::string::ToString::to_string(&$name);
            $crate::slt::run_all(&name, $engine).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn differential() {
            let name = ::std::string::ToString::to_string(&$name);
            let make_engine = $engine;
            let engine = make_engine().await;
            let _outcome =
                $crate::differential::run_for_backend(&engine, &name, $rows, $share).await;
            $(
                let $outcome: &$crate::differential::Outcome = &_outcome;
                $check
            )?
        }
    };
}
