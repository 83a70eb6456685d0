//! A message whose record fills the whole data area, sent when the ring is
//! empty but its positions are not at the start: the producer must place a
//! pad record first, and neither side may wait for ever on the other.

use multiproc_queue::spsc::SpscRing;
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

/// The docs promise that the largest message fits once the ring has drained:
/// with the consumer idle (not polling), a drained ring whose positions are
/// past the start of the data area must take it at once.
#[test]
fn the_largest_message_fits_a_drained_ring_without_the_consumer_polling() {
    for cap in [32usize, 64, 256, 4096] {
        for first in [0usize, 1, 8, 24, 100] {
            let ring = SpscRing::builder().capacity(cap).create().unwrap();
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            let max = tx.max_message_len();
            if first > max {
                continue;
            }
            for round in 0..3u8 {
                // Leave the positions somewhere past the start, drained.
                tx.try_send(&vec![round; first]).unwrap();
                assert_eq!(rx.try_recv().unwrap().len(), first);
                let big = vec![round ^ 0x5a; max];
                assert_eq!(
                    tx.try_send(&big),
                    Ok(()),
                    "cap {cap}, after a {first}-byte message, round {round}"
                );
                assert_eq!(&*rx.try_recv().unwrap(), &big[..], "cap {cap}");
                assert!(rx.try_recv().is_err(), "cap {cap}: one message only");
            }
            // Small messages keep flowing across laps afterwards.
            for i in 0..(3 * cap / 16) as u8 {
                tx.try_send(&[i; 7]).unwrap();
                assert_eq!(&*rx.try_recv().unwrap(), &[i; 7]);
            }
        }
    }
}
