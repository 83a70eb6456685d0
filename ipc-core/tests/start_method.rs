//! Python's `set_start_method`: chosen once for the program. (A test binary
//! of its own: the choice is global to the process.)

use multiproc_core::process::{self, set_start_method, start_method, StartMethod};

#[test]
fn the_start_method_is_chosen_once() {
    process::init();
    assert_eq!(start_method(), StartMethod::Spawn);
    set_start_method(StartMethod::Fork).unwrap();
    assert_eq!(start_method(), StartMethod::Fork);
    assert!(set_start_method(StartMethod::Spawn).is_err());
    assert!(set_start_method(StartMethod::Fork).is_err());
    assert_eq!(start_method(), StartMethod::Fork);
    // Every builder now forks: here, in the multi-threaded test harness,
    // the checked fork refuses, which shows the default took.
    let r = multiproc_core::Process::builder().start(|x: u8| x, 1u8);
    assert!(matches!(
        r,
        Err(multiproc_core::ProcessError::MultiThreaded { .. })
    ));
}
