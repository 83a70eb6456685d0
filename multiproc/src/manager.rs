//! [`Manager`]: Python's `multiprocessing.Manager()`, without its server
//! process.

use multiproc_core::message::Message;
use multiproc_sync::{ContainerConfig, ObjectError, SharedDict, SharedList};

/// Makes shared lists and dicts the way Python's `Manager()` makes its
/// proxies: `Manager::new().list::<T>()` is a [`SharedList<T>`] in an
/// anonymous segment, to pass to children in the arguments of
/// [`Process::start`](crate::Process::start).
///
/// Python's manager is a server process that owns the objects and answers
/// one socket round trip per proxy call. Here there is none: each process
/// holding a handle changes the container in shared memory itself, under
/// a robust lock, and a process killed in the middle of an update leaves
/// it as it was before. So nothing needs shutting down, and a manager is
/// only the [`ContainerConfig`] its containers are made with (their
/// capacity in entries and bytes is fixed at creation; the default holds
/// [`DEFAULT_CAPACITY`](multiproc_sync::DEFAULT_CAPACITY) entries). Containers
/// for unrelated processes are made by name instead:
/// [`SharedList::create`], [`SharedDict::create`].
///
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::new();
/// let squares = manager.list::<u64>()?;
/// squares.extend((0..10).map(|i| i * i))?;
/// assert_eq!(squares.slice(2..5)?, [4, 9, 16]);
/// let ages = manager.dict::<String, u32>()?;
/// ages.insert("ada".into(), 36)?;
/// assert_eq!(ages.get(&"ada".into())?, Some(36));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Manager {
    config: ContainerConfig,
}

impl Manager {
    /// A manager whose containers have the default configuration.
    pub fn new() -> Self {
        Manager::default()
    }

    /// A manager whose containers are made with `config`.
    pub fn with_config(config: ContainerConfig) -> Self {
        Manager { config }
    }

    /// The configuration its containers are made with.
    pub fn config(&self) -> ContainerConfig {
        self.config
    }

    /// A new empty shared list (Python's `manager.list()`).
    ///
    /// # Errors
    /// An invalid configuration, or no memory for the segment:
    /// [`ObjectError`].
    pub fn list<T: Message + 'static>(&self) -> Result<SharedList<T>, ObjectError> {
        SharedList::anonymous(self.config)
    }

    /// A new empty shared dict (Python's `manager.dict()`).
    ///
    /// # Errors
    /// As [`list`](Manager::list).
    pub fn dict<K: Message + 'static, V: Message + 'static>(
        &self,
    ) -> Result<SharedDict<K, V>, ObjectError> {
        SharedDict::anonymous(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_get_the_managers_configuration() {
        let cfg = ContainerConfig::new(3, 64);
        let m = Manager::with_config(cfg);
        let list = m.list::<u8>().unwrap();
        assert_eq!(list.config().unwrap(), cfg);
        list.extend([1, 2, 3]).unwrap();
        assert!(list.push(4).is_err(), "capacity 3");
        assert_eq!(m.dict::<u8, u8>().unwrap().config().unwrap(), cfg);
        assert_eq!(Manager::new().config(), ContainerConfig::default());
        assert!(Manager::with_config(ContainerConfig::new(0, 1))
            .list::<u8>()
            .is_err());
    }
}
