//! The kernel's process tree, read from `/proc`: which processes it started (the REPL child,
//! and the cargo and rustc that evcxr runs to compile a cell), so that an interrupt can cancel
//! a compilation and a shutdown leaves nothing behind.

use std::collections::HashMap;

/// Held by the tests that start a process named cargo or rustc under the test process, and by
/// those that interrupt, which kills every such process under it: one test's interrupt would
/// otherwise kill another test's compiler.
#[cfg(test)]
pub(crate) fn tree_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every live descendant of `root` (children, their children, ...), parents first.
pub fn descendants(root: u32) -> Vec<u32> {
    descendants_in(&parents(), root)
}

/// The compilations running under `root` outside the subtree of `excluded`: each cargo or
/// rustc process with everything under it (rustc, the linker). With the kernel as `root` and
/// the REPL child as `excluded`, what evcxr runs to compile a cell, and nothing a cell started.
pub fn compilers(root: u32, excluded: u32) -> Vec<u32> {
    let parents = parents();
    let skip: Vec<u32> = std::iter::once(excluded).chain(descendants_in(&parents, excluded)).collect();
    let mut found: Vec<u32> = Vec::new();
    for pid in descendants_in(&parents, root) {
        if skip.contains(&pid) || found.contains(&pid) || !is_compiler(pid) {
            continue;
        }
        found.push(pid);
        found.extend(descendants_in(&parents, pid));
    }
    found
}

fn is_compiler(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|name| matches!(name.trim(), "cargo" | "rustc"))
}

/// Sends `signal` to each process.
pub fn signal_all(pids: &[u32], signal: libc::c_int) {
    for &pid in pids {
        // SAFETY: kill(2) with a valid signal number; a pid that has already exited only
        // makes the call fail.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

/// Ends every process this one started (the REPL child, a compilation, what cells started).
pub fn kill_descendants() {
    let pids = descendants(std::process::id());
    signal_all(&pids, libc::SIGKILL);
}

fn descendants_in(parents: &HashMap<u32, u32>, root: u32) -> Vec<u32> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        let mut children: Vec<u32> = parents.iter().filter(|(_, &pp)| pp == parent).map(|(&p, _)| p).collect();
        children.sort_unstable();
        found.extend(children);
        i += 1;
    }
    found.remove(0);
    found
}

/// pid -> parent pid of every process now visible in `/proc`.
fn parents() -> HashMap<u32, u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return HashMap::new() };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parent_of(&stat)?))
        })
        .collect()
}

/// The parent pid in a `/proc/PID/stat` line. The command name in parentheses may hold
/// spaces and parentheses itself, so fields are counted from its last `)`.
fn parent_of(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn the_parent_is_read_past_a_name_with_spaces_and_parentheses() {
        assert_eq!(parent_of("1234 (a) b (c)) S 77 1234 1234 0 -1"), Some(77));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn descendants_are_found_through_grandchildren_and_compilers_by_name() {
        let _tree = tree_lock();
        // sh starts a sleep, and a process named rustc (sleep, run through a link of that name)
        // under its own sh, as cargo starts rustc.
        let dir = std::env::temp_dir().join(format!("glassbox-processes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rustc = dir.join("rustc");
        let sleep =
            String::from_utf8(Command::new("sh").args(["-c", "command -v sleep"]).output().unwrap().stdout).unwrap();
        // A link, not a copy: writing an executable while other test threads fork lets a
        // child inherit the open file, and running it then fails with "Text file busy".
        let _ = std::fs::remove_file(&rustc);
        std::os::unix::fs::symlink(sleep.trim(), &rustc).unwrap();
        let script = format!("sleep 30 & sh -c '{} 30 & wait' & echo go; wait", rustc.display());
        let mut child = Command::new("sh").args(["-c", &script]).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        // Give the inner sh time to start its rustc: until then a forked shell that has not
        // yet run its command can fill the count of three, under the name sh.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let settled = |all: &[u32]| all.len() == 3 && !compilers(child.id(), u32::MAX).is_empty();
        let mut all = descendants(child.id());
        while !settled(&all) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            all = descendants(child.id());
        }
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(descendants(std::process::id()).contains(&child.id()));
        let inner = all.iter().copied().find(|&p| !descendants(p).is_empty()).expect("the inner sh");
        let compiler = descendants(inner);
        assert_eq!(compilers(child.id(), u32::MAX), compiler, "the process named rustc, not the sleep");
        assert!(compilers(child.id(), inner).is_empty(), "an excluded subtree is left out");
        signal_all(&all, libc::SIGKILL);
        signal_all(&[child.id()], libc::SIGKILL);
        child.wait().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
