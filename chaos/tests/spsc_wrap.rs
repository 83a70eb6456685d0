//! A message whose record fills the whole data area, sent when the ring is
//! empty but its positions are not at the start: the producer must place a
//! pad record first, and neither side may wait for ever on the other.

use ipc_queue::spsc::SpscRing;
use std::time::Duration;

#[test]
fn a_full_size_message_after_a_wrap_gets_through_to_a_waiting_consumer() {
    for cap in [16usize, 32, 64, 256] {
        let ring = SpscRing::builder().capacity(cap).create().unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let max = tx.max_message_len();
        for offset_msg in [0usize, 1, 8] {
            if offset_msg + 8 > cap {
                continue;
            }
            tx.send_timeout(&vec![7u8; offset_msg], Duration::from_secs(5))
                .unwrap();
            let mut buf = vec![0u8; cap];
            assert_eq!(
                rx.recv_into_timeout(&mut buf, Duration::from_secs(5)),
                Ok(offset_msg)
            );
            // The consumer waits first; the producer then sends a message
            // whose record is the whole area.
            std::thread::scope(|s| {
                let r = s.spawn(|| rx.recv_into_timeout(&mut buf, Duration::from_secs(10)));
                std::thread::sleep(Duration::from_millis(50));
                let sent = tx.send_timeout(&vec![9u8; max], Duration::from_secs(10));
                assert_eq!(
                    sent,
                    Ok(()),
                    "cap {cap}: send after a {offset_msg}-byte message"
                );
                assert_eq!(r.join().unwrap(), Ok(max), "cap {cap}");
            });
        }
    }
}
