//! Threads of `sesrupscale` (its own test binary, so that no other test's pools are counted):
//! two chained instances share one persistent pool instead of each spawning threads per
//! frame, and the workers go away with the last element that used them.

use gst::prelude::*;

/// Threads of this process named `sesr-worker-*` (the native backend's pool).
fn workers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .map(|c| c.starts_with("sesr-worker"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn chained_instances_share_one_persistent_pool() {
    gst::init().unwrap();
    gstsesr::plugin_register_static().unwrap();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cores < 2 {
        eprintln!("SKIPPED: one CPU, the native backend runs on the calling thread");
        return;
    }
    assert_eq!(workers(), 0);
    let p = gst::parse::launch(
        "videotestsrc num-buffers=6 ! video/x-raw,format=I420,width=96,height=64 ! sesrupscale name=a \
         ! sesrupscale name=b ! fakesink name=sink",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    // Count the workers at every output buffer: never more than one pool's worth.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    p.by_name("sink").unwrap().static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        s2.lock().unwrap().push(workers());
        gst::PadProbeReturn::Ok
    });
    p.set_state(gst::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    for name in ["a", "b"] {
        assert_eq!(p.by_name(name).unwrap().property::<String>("active-backend"), "native");
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "every frame came out");
    // One shared pool of `cores` workers, the same threads for every frame (persistent).
    assert!(seen.iter().all(|&n| n == cores), "workers per frame {seen:?}, {cores} cores");
    p.set_state(gst::State::Null).unwrap();
    drop(p);
    // The pool ends with the last engine that held it.
    let t0 = std::time::Instant::now();
    while workers() > 0 && t0.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(workers(), 0, "workers left after the pipeline ended");
}
