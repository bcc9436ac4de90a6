//! The kernel's questions to the REPL child about its variables, answered between cells
//! without compiling one.
//!
//! A compiled cell costs a few tenths of a second (cargo, rustc, the linker), far too much
//! for `:vars`, which only reads what the variables hold. So the child's prelude starts a
//! thread ([`serve`]) that listens on a Unix socket the kernel chose, and the kernel
//! ([`ask`]) sends it variable names, one per line, ending with an empty line; the child
//! answers one JSON line per name: the tensor it holds ([`TensorInfo`]), or `null`.
//!
//! The thread reads evcxr's variable store, which a running cell changes. That is sound
//! because the kernel runs one request at a time and asks only while no cell runs.

use crate::vars::TensorInfo;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// What a variable's name holds, when it is a tensor: the child's look into its variables.
pub type Describe = Box<dyn Fn(&str) -> Option<TensorInfo> + Send>;

/// Listens at `path` (replacing a socket a previous child left there) and answers each
/// question with `describe(name)`. In the child; returns once the thread listens. `describe`
/// is boxed so that the prelude cell, which calls this, compiles none of it: a generic `serve`
/// was instantiated there, and was most of the prelude's compile.
pub fn serve(path: &str, describe: Describe) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::thread::Builder::new().name("glassbox-probe".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            // A client that vanished mid-question is the kernel's problem, not the child's.
            let _ = answer(stream, &describe);
        }
    })?;
    Ok(())
}

fn answer(stream: UnixStream, describe: &Describe) -> io::Result<()> {
    let mut reply = String::new();
    for line in BufReader::new(&stream).lines() {
        let name = line?;
        if name.is_empty() {
            break;
        }
        reply.push_str(&serde_json::to_string(&describe(&name)).map_err(io::Error::other)?);
        reply.push('\n');
    }
    (&stream).write_all(reply.as_bytes())
}

/// Asks the child listening at `path` what each of `names` holds, in order. Fails when no
/// child listens (it has not run its prelude) or it does not answer within `timeout`.
pub fn ask(path: &Path, names: &[&str], timeout: Duration) -> io::Result<Vec<Option<TensorInfo>>> {
    let stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut question = String::new();
    for name in names {
        if name.is_empty() || name.contains('\n') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("not a variable name: {name:?}")));
        }
        question.push_str(name);
        question.push('\n');
    }
    question.push('\n');
    (&stream).write_all(question.as_bytes())?;
    let mut answers = Vec::with_capacity(names.len());
    for line in BufReader::new(&stream).lines().take(names.len()) {
        answers.push(serde_json::from_str(&line?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?);
    }
    if answers.len() != names.len() {
        let got = answers.len();
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{got} answers for {} names", names.len())));
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(shape: Vec<i64>) -> TensorInfo {
        TensorInfo { shape, kind: "Float".into(), device: "Cpu".into(), bytes: 4 }
    }

    #[test]
    fn answers_each_name_in_order_and_again_after_a_new_serve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe.sock");
        let serve_at = |size: i64| {
            serve(path.to_str().unwrap(), Box::new(move |name| (name == "x").then(|| info(vec![size])))).unwrap();
        };
        serve_at(3);
        let t = Duration::from_secs(5);
        assert_eq!(ask(&path, &["n", "x"], t).unwrap(), vec![None, Some(info(vec![3]))]);
        assert_eq!(ask(&path, &[], t).unwrap(), vec![]);
        // A restarted child binds the same path; the kernel's next question reaches it.
        serve_at(7);
        assert_eq!(ask(&path, &["x"], t).unwrap(), vec![Some(info(vec![7]))]);
        assert!(ask(&path, &["a\nb"], t).unwrap_err().to_string().contains("not a variable name"));
    }

    #[test]
    fn no_listener_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let err = ask(&dir.path().join("none.sock"), &["x"], Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
