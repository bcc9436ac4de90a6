//! Reading PyTorch's `torch.save` files, so that glassbox can load `model.state_dict()`
//! weights (`.pth`/`.pt`, torchvision's hub files included) without Python.
//!
//! libtorch's own loader only knows TorchScript archives and fails on the `OrderedDict` a
//! state dict is, so the format is read here. A file is one of two containers:
//!
//! - since torch 1.6, a zip archive: `<top>/data.pkl` is the pickled object, every tensor
//!   storage is the entry `<top>/data/<key>`, and `<top>/byteorder` names their byte order;
//! - before, the legacy format: a chain of pickles (magic number, protocol version, system
//!   information, the object, the list of storage keys) followed by each storage as a
//!   little-endian element count and its bytes.
//!
//! In both, the object pickle names storages through persistent ids and rebuilds tensors by
//! calling `torch._utils._rebuild_tensor*`. The small pickle machine below runs only the
//! opcodes `torch.save` emits and models those calls as data: no code named in the file runs,
//! and classes it does not know become opaque values. That keeps untrusted files harmless,
//! and lets a checkpoint carry epochs, optimizer state or metadata next to its tensors.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Element types a state dict holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }

    /// torch's name for it, as messages and `_rebuild_tensor_v3` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::F16 => "float16",
            Dtype::BF16 => "bfloat16",
            Dtype::I64 => "int64",
            Dtype::I32 => "int32",
            Dtype::I16 => "int16",
            Dtype::I8 => "int8",
            Dtype::U8 => "uint8",
            Dtype::Bool => "bool",
        }
    }

    const ALL: [Dtype; 10] = [
        Dtype::F32,
        Dtype::F64,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I64,
        Dtype::I32,
        Dtype::I16,
        Dtype::I8,
        Dtype::U8,
        Dtype::Bool,
    ];

    /// The dtype globals of `_rebuild_tensor_v3` (`torch.float32`, or an alias like `torch.float`).
    fn from_torch(name: &str) -> Option<Dtype> {
        let alias = match name {
            "float" => "float32",
            "double" => "float64",
            "half" => "float16",
            "long" => "int64",
            "int" => "int32",
            "short" => "int16",
            other => other,
        };
        Dtype::ALL.into_iter().find(|d| d.name() == alias)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor, materialized contiguous (row-major), little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<i64>,
    pub data: Vec<u8>,
}

/// What makes a file unreadable as a state dict.
#[derive(Debug, thiserror::Error)]
pub enum PthError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is not a file written by torch.save: {why}", path.display())]
    NotTorch { path: PathBuf, why: String },
    #[error("{} is damaged or truncated: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("{} {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
    #[error(
        "{} holds a pickled Python object `{class}`, not a state dict; save `model.state_dict()` instead",
        path.display()
    )]
    PickledObject { path: PathBuf, class: String },
    #[error(
        "{} is a TorchScript archive (torch.jit.save), not a state dict; save `model.state_dict()` instead",
        path.display()
    )]
    TorchScript { path: PathBuf },
    #[error(
        "{} holds {found}, not a state dict; expected a dict of name -> tensor, directly or under the key `state_dict`, `model_state_dict` or `model`",
        path.display()
    )]
    NotStateDict { path: PathBuf, found: String },
}

/// A broadcast tensor (stride 0) may be saved larger than its storage; materializing one is
/// allowed up to this size, beyond that a size read from the file could exhaust memory.
const MAX_BROADCAST_BYTES: u64 = 1 << 30;

/// The first pickle of a legacy file: `0x1950a86a20f9469cfc6c` as LONG1, little-endian.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL: i64 = 1001;

/// Reads the named tensors of a state dict file, in the file's order.
pub fn read(path: &Path) -> Result<Vec<(String, RawTensor)>, PthError> {
    let io = |source| PthError::Io { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(io)?;
    let mut head = Vec::new();
    (&mut file).take(2).read_to_end(&mut head).map_err(io)?;
    match head.as_slice() {
        b"PK" => {
            let len = file.metadata().map_err(io)?.len();
            read_zip(path, file, len)
        }
        [0x80, _] => read_legacy(path, &std::fs::read(path).map_err(io)?),
        [] => Err(not_torch(path, "the file is empty")),
        _ => Err(not_torch(path, "it is neither a zip archive (torch >= 1.6) nor a pickle (older torch)")),
    }
}

fn not_torch(path: &Path, why: &str) -> PthError {
    PthError::NotTorch { path: path.to_path_buf(), why: why.to_string() }
}

fn corrupt(path: &Path, what: impl Into<String>) -> PthError {
    PthError::Corrupt { path: path.to_path_buf(), what: what.into() }
}

/// `file_len` bounds what sizes read from the archive may allocate.
fn read_zip<R: Read + Seek>(path: &Path, file: R, file_len: u64) -> Result<Vec<(String, RawTensor)>, PthError> {
    let mut zip = zip::ZipArchive::new(file).map_err(|e| corrupt(path, format!("zip archive: {e}")))?;
    // The top folder is named after the file torch wrote; only one `data.pkl` sits right under it.
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let top = names
        .iter()
        .filter_map(|n| n.strip_suffix("data.pkl"))
        .find(|top| top.is_empty() || (top.ends_with('/') && top.matches('/').count() == 1))
        .ok_or_else(|| not_torch(path, "a zip archive without a data.pkl entry"))?
        .to_string();
    let (code, constants) = (format!("{top}code/"), format!("{top}constants.pkl"));
    if names.iter().any(|n| n.starts_with(&code) || *n == constants) {
        return Err(PthError::TorchScript { path: path.to_path_buf() });
    }
    let entry = |zip: &mut zip::ZipArchive<R>, name: &str, want: u64| -> Result<Vec<u8>, PthError> {
        let found = zip.by_name(name);
        let found = found.map_err(|e| corrupt(path, format!("entry `{name}`: {e}")))?;
        let mut bytes = Vec::with_capacity(want.min(file_len) as usize);
        found.take(want).read_to_end(&mut bytes).map_err(|e| corrupt(path, format!("entry `{name}`: {e}")))?;
        Ok(bytes)
    };
    let byteorder_name = format!("{top}byteorder");
    let byteorder = match names.contains(&byteorder_name) {
        true => entry(&mut zip, &byteorder_name, 16)?,
        false => b"little".to_vec(), // absent from the earliest archives, which are little-endian
    };
    let swap = match byteorder.as_slice() {
        b"little" => false,
        b"big" => true,
        other => {
            return Err(corrupt(
                path,
                format!("byteorder is `{}`; expected `little` or `big`", String::from_utf8_lossy(other)),
            ))
        }
    };
    let pickle = entry(&mut zip, &format!("{top}data.pkl"), file_len)?;
    let mut vm = Machine::new(path, &pickle);
    let object = vm.load()?;
    let tensors = vm.state_dict(object)?;
    materialize(path, &vm.heap, tensors, swap, |storage, bytes| {
        let name = format!("{top}data/{}", storage.key);
        let data = entry(&mut zip, &name, bytes)?;
        if (data.len() as u64) < bytes {
            return Err(corrupt(
                path,
                format!("storage `{name}` holds {} bytes; its header promises {bytes}", data.len()),
            ));
        }
        Ok(data)
    })
}

fn read_legacy(path: &Path, file: &[u8]) -> Result<Vec<(String, RawTensor)>, PthError> {
    let mut vm = Machine::new(path, file);
    match vm.load()? {
        Value::Long(bytes) if *bytes == LEGACY_MAGIC => {}
        _ => return Err(not_torch(path, "a Python pickle without torch's magic number")),
    }
    match vm.load()? {
        Value::Int(LEGACY_PROTOCOL) => {}
        _ => return Err(PthError::Unsupported {
            path: path.to_path_buf(),
            what: format!("uses a legacy protocol other than {LEGACY_PROTOCOL}; resave it with a recent torch: `torch.save(torch.load(f), g)`"),
        }),
    }
    vm.load()?; // system information: the storages after the pickles are little-endian regardless
    let object = vm.load()?;
    let keys = vm.load()?;
    let tensors = vm.state_dict(object)?;
    let keys = match keys {
        Value::List(i) => vm.heap.seqs[i].iter().map(|k| vm.key(k)).collect::<Result<Vec<_>, _>>()?,
        _ => return Err(corrupt(path, "the storage key list is missing")),
    };
    // Each storage: an 8-byte little-endian element count, then its elements.
    let mut pos = vm.pos;
    let mut spans = HashMap::new();
    for key in keys {
        let elem = vm.heap.storages.iter().find(|s| s.key == key).map(|s| s.elem_size);
        let elem = elem.ok_or_else(|| corrupt(path, format!("storage `{key}` is listed but never used")))?;
        let count = file.get(pos..pos + 8).ok_or_else(|| corrupt(path, format!("storage `{key}` is cut off")))?;
        let count = u64::from_le_bytes(count.try_into().unwrap_or_default());
        let len = count.checked_mul(elem as u64).filter(|&n| n <= (file.len() - pos - 8) as u64);
        let len = len.ok_or_else(|| corrupt(path, format!("storage `{key}` is cut off")))? as usize;
        spans.insert(key, pos + 8..pos + 8 + len);
        pos += 8 + len;
    }
    materialize(path, &vm.heap, tensors, false, |storage, bytes| {
        let span = spans.get(&storage.key).cloned();
        let span = span.ok_or_else(|| corrupt(path, format!("storage `{}` is missing", storage.key)))?;
        if (span.len() as u64) < bytes {
            return Err(corrupt(
                path,
                format!("storage `{}` holds {} bytes; its header promises {bytes}", storage.key, span.len()),
            ));
        }
        Ok(file[span].to_vec())
    })
}

/// A pickled value. Containers live in [`Heap`] and are named by index, so that the memo
/// shares them the way Python does (filled after being memoized) and no input, however
/// nested or cyclic, makes dropping them recurse.
#[derive(Clone)]
enum Value {
    None,
    Bool,
    Int(i64),
    /// An integer wider than 64 bits, little-endian two's complement.
    Long(Rc<[u8]>),
    Float,
    Str(Rc<str>),
    Bytes,
    Tuple(usize),
    List(usize),
    Dict(usize),
    /// A class or function named by GLOBAL, as `module.name`.
    Global(Rc<str>),
    Storage(usize),
    Tensor(usize),
    /// An instance of a class not modelled here, by its class's name.
    Object(Rc<str>),
}

/// A storage as a persistent id names it: which bytes, read as what.
struct Storage {
    key: String,
    /// Err: torch's name of an element type glassbox does not read (e.g. complex64).
    dtype: Result<Dtype, String>,
    elem_size: usize,
    /// Legacy storage views: this storage is `count` elements from `offset` of the root `key`.
    offset: u64,
    count: u64,
}

struct TensorRef {
    storage: usize,
    dtype: Result<Dtype, String>,
    offset: i64,
    shape: Vec<i64>,
    stride: Vec<i64>,
}

#[derive(Default)]
struct Heap {
    seqs: Vec<Vec<Value>>,
    dicts: Vec<Vec<(Value, Value)>>,
    storages: Vec<Storage>,
    tensors: Vec<TensorRef>,
}

/// The pickle machine; one runs a file's pickles one after another.
struct Machine<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    heap: Heap,
}

impl<'a> Machine<'a> {
    fn new(path: &'a Path, data: &'a [u8]) -> Self {
        Machine { path, data, pos: 0, stack: vec![], marks: vec![], memo: HashMap::new(), heap: Heap::default() }
    }

    fn bad(&self, what: impl fmt::Display) -> PthError {
        corrupt(self.path, format!("{what} (pickle byte {})", self.pos))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], PthError> {
        let end = usize::try_from(n).ok().and_then(|n| self.pos.checked_add(n)).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| self.bad("the pickle ends in the middle of an opcode"))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize) -> Result<u64, PthError> {
        Ok(self.take(n as u64)?.iter().rev().fold(0, |acc, &b| acc << 8 | b as u64))
    }

    fn line(&mut self) -> Result<&'a str, PthError> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.bad("unterminated text"))?;
        let text = std::str::from_utf8(&rest[..n]).map_err(|_| self.bad("text is not UTF-8"))?;
        self.pos += n + 1;
        Ok(text)
    }

    fn pop(&mut self) -> Result<Value, PthError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.bad("an opcode reaches past a mark"));
        }
        self.stack.pop().ok_or_else(|| self.bad("an opcode finds the stack empty"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PthError> {
        let mark = self.marks.pop().ok_or_else(|| self.bad("no mark to collect items to"))?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn top(&self) -> Result<&Value, PthError> {
        self.stack.last().ok_or_else(|| self.bad("an opcode finds the stack empty"))
    }

    /// Runs one pickle from the current position to its STOP and returns its object.
    fn load(&mut self) -> Result<Value, PthError> {
        self.stack.clear();
        self.marks.clear();
        self.memo.clear();
        loop {
            match self.take(1)?[0] {
                b'.' => return self.pop(), // STOP
                op => {
                    if let Some(value) = self.step(op)? {
                        self.stack.push(value);
                    }
                }
            }
        }
    }

    /// One opcode; those that push nothing answer `None`.
    #[rustfmt::skip]
    fn step(&mut self, op: u8) -> Result<Option<Value>, PthError> {
        use Value::{Bool, Bytes, Float, Int, Str};
        Ok(match op {
            0x80 => self.take(1).map(|_| None)?,                   // PROTO
            0x95 => self.take(8).map(|_| None)?,                   // FRAME
            b'(' => self.mark(),                                   // MARK
            b'0' => self.pop().map(|_| None)?,                     // POP
            b'1' => self.pop_mark().map(|_| None)?,                // POP_MARK
            b'2' => Some(self.top()?.clone()),                     // DUP
            b'N' => Some(Value::None),                                // NONE
            0x88 | 0x89 => Some(Bool),                             // NEWTRUE, NEWFALSE
            b'J' => Some(Int(self.uint(4)? as u32 as i32 as i64)), // BININT
            b'K' => Some(Int(self.uint(1)? as i64)),               // BININT1
            b'M' => Some(Int(self.uint(2)? as i64)),               // BININT2
            0x8a => Some(long(self.counted(1)?)),                  // LONG1
            0x8b => Some(long(self.counted(4)?)),                  // LONG4
            b'I' | b'L' => Some(self.text_int()?),                 // INT, LONG
            b'G' => self.take(8).map(|_| Some(Float))?,            // BINFLOAT
            b'F' => self.line().map(|_| Some(Float))?,             // FLOAT
            b'X' | b'T' => Some(self.string(4)?),                  // BINUNICODE, BINSTRING
            0x8c | b'U' => Some(self.string(1)?),                  // SHORT_BINUNICODE, SHORT_BINSTRING
            0x8d => Some(self.string(8)?),                         // BINUNICODE8
            b'S' | b'V' => Some(Str(self.line()?.trim_matches(['\'', '"']).into())), // STRING, UNICODE
            b'C' => self.counted(1).map(|_| Some(Bytes))?,         // SHORT_BINBYTES
            b'B' => self.counted(4).map(|_| Some(Bytes))?,         // BINBYTES
            0x8e | 0x96 => self.counted(8).map(|_| Some(Bytes))?,  // BINBYTES8, BYTEARRAY8
            b')' => Some(self.seq(vec![], false)),                 // EMPTY_TUPLE
            0x85..=0x87 => Some(self.tuple_n(op - 0x84)?),         // TUPLE1, TUPLE2, TUPLE3
            b't' | 0x91 => Some(self.collect(false)?),             // TUPLE, FROZENSET
            b']' | 0x8f => Some(self.seq(vec![], true)),           // EMPTY_LIST, EMPTY_SET
            b'l' => Some(self.collect(true)?),                     // LIST
            b'}' => Some(self.dict(vec![])),                       // EMPTY_DICT
            b'd' => Some(self.collect_dict()?),                    // DICT
            b'a' => self.append(false)?,                           // APPEND
            b'e' | 0x90 => self.append(true)?,                     // APPENDS, ADDITEMS
            b's' => self.set_items(false)?,                        // SETITEM
            b'u' => self.set_items(true)?,                         // SETITEMS
            b'q' => self.put(1)?,                                  // BINPUT
            b'r' => self.put(4)?,                                  // LONG_BINPUT
            b'p' => self.put(0)?,                                  // PUT
            0x94 => self.memoize(self.memo.len() as u32)?,         // MEMOIZE
            b'h' => Some(self.get(1)?),                            // BINGET
            b'j' => Some(self.get(4)?),                            // LONG_BINGET
            b'g' => Some(self.get(0)?),                            // GET
            b'c' => Some(self.global()?),                          // GLOBAL
            0x93 => Some(self.stack_global()?),                    // STACK_GLOBAL
            b'R' => Some(self.reduce()?),                          // REDUCE
            0x81 => Some(self.new_object(1)?),                     // NEWOBJ
            0x92 => Some(self.new_object(2)?),                     // NEWOBJ_EX
            b'b' => self.pop().map(|_| None)?,                     // BUILD: instance state matters to nothing read here
            b'Q' => Some(self.persistent_load()?),                 // BINPERSID
            _ => return Err(self.bad(format!("opcode 0x{op:02x} is not one torch.save writes"))),
        })
    }

    fn mark(&mut self) -> Option<Value> {
        self.marks.push(self.stack.len());
        None
    }

    /// Bytes preceded by their count, `width` bytes little-endian.
    fn counted(&mut self, width: usize) -> Result<&'a [u8], PthError> {
        let n = self.uint(width)?;
        self.take(n)
    }

    fn string(&mut self, width: usize) -> Result<Value, PthError> {
        Ok(Value::Str(String::from_utf8_lossy(self.counted(width)?).into()))
    }

    fn text_int(&mut self) -> Result<Value, PthError> {
        let text = self.line()?.trim_end_matches('L');
        match text {
            "00" | "01" => Ok(Value::Bool),
            _ => text.parse().map(Value::Int).map_err(|_| self.bad(format!("bad integer `{text}`"))),
        }
    }

    fn seq(&mut self, items: Vec<Value>, list: bool) -> Value {
        self.heap.seqs.push(items);
        let i = self.heap.seqs.len() - 1;
        if list {
            Value::List(i)
        } else {
            Value::Tuple(i)
        }
    }

    fn dict(&mut self, items: Vec<(Value, Value)>) -> Value {
        self.heap.dicts.push(items);
        Value::Dict(self.heap.dicts.len() - 1)
    }

    fn tuple_n(&mut self, n: u8) -> Result<Value, PthError> {
        let mut items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
        items.reverse();
        Ok(self.seq(items, false))
    }

    fn collect(&mut self, list: bool) -> Result<Value, PthError> {
        let items = self.pop_mark()?;
        Ok(self.seq(items, list))
    }

    fn collect_dict(&mut self) -> Result<Value, PthError> {
        let items = self.pop_mark()?;
        Ok(self.dict(pairs(items)))
    }

    fn append(&mut self, marked: bool) -> Result<Option<Value>, PthError> {
        let items = if marked { self.pop_mark()? } else { vec![self.pop()?] };
        match *self.top()? {
            Value::List(i) => self.heap.seqs[i].extend(items),
            Value::Object(_) => {}
            _ => return Err(self.bad("APPEND to something that is not a list")),
        }
        Ok(None)
    }

    fn set_items(&mut self, marked: bool) -> Result<Option<Value>, PthError> {
        let items = match marked {
            true => self.pop_mark()?,
            false => {
                let value = self.pop()?;
                vec![self.pop()?, value]
            }
        };
        match *self.top()? {
            Value::Dict(i) => self.heap.dicts[i].extend(pairs(items)),
            Value::Object(_) => {}
            _ => return Err(self.bad("SETITEM on something that is not a dict")),
        }
        Ok(None)
    }

    /// A memo index: `width` bytes, or a text line when 0.
    fn index(&mut self, width: usize) -> Result<u32, PthError> {
        if width > 0 {
            return Ok(self.uint(width)? as u32);
        }
        let text = self.line()?;
        text.parse().map_err(|_| self.bad(format!("bad memo index `{text}`")))
    }

    fn put(&mut self, width: usize) -> Result<Option<Value>, PthError> {
        let i = self.index(width)?;
        self.memoize(i)
    }

    fn memoize(&mut self, i: u32) -> Result<Option<Value>, PthError> {
        let top = self.top()?.clone();
        self.memo.insert(i, top);
        Ok(None)
    }

    fn get(&mut self, width: usize) -> Result<Value, PthError> {
        let i = self.index(width)?;
        self.memo.get(&i).cloned().ok_or_else(|| self.bad(format!("memo entry {i} was never stored")))
    }

    fn global(&mut self) -> Result<Value, PthError> {
        let (module, name) = (self.line()?, self.line()?);
        Ok(Value::Global(format!("{module}.{name}").into()))
    }

    fn stack_global(&mut self) -> Result<Value, PthError> {
        match (self.pop()?, self.pop()?) {
            (Value::Str(name), Value::Str(module)) => Ok(Value::Global(format!("{module}.{name}").into())),
            _ => Err(self.bad("STACK_GLOBAL needs two strings")),
        }
    }

    fn reduce(&mut self) -> Result<Value, PthError> {
        let args = self.pop()?;
        let func = self.pop()?;
        self.call(func, args)
    }

    /// NEWOBJ and NEWOBJ_EX: `args` arguments above the class, which alone names the object.
    fn new_object(&mut self, args: usize) -> Result<Value, PthError> {
        for _ in 0..args {
            self.pop()?;
        }
        Ok(match self.pop()? {
            Value::Global(name) if is_dict_class(&name) => self.dict(vec![]),
            Value::Global(name) => Value::Object(name),
            _ => Value::Object("<unknown>".into()),
        })
    }

    fn items(&self, v: &Value) -> &[Value] {
        match *v {
            Value::Tuple(i) | Value::List(i) => &self.heap.seqs[i],
            _ => &[],
        }
    }

    /// REDUCE: the few callables torch.save's pickles need, evaluated as data.
    fn call(&mut self, func: Value, args: Value) -> Result<Value, PthError> {
        let Value::Global(name) = func else { return Ok(Value::Object("<unknown>".into())) };
        let args = self.items(&args).to_vec();
        match &*name {
            n if is_dict_class(n) => {
                // OrderedDict(pairs) as well as OrderedDict().
                let pairs = args.first().map(|p| self.items(p).to_vec()).unwrap_or_default();
                let pairs = pairs.iter().filter_map(|p| match self.items(p) {
                    [k, v] => Some((k.clone(), v.clone())),
                    _ => None,
                });
                let pairs = pairs.collect();
                Ok(self.dict(pairs))
            }
            "torch._utils._rebuild_tensor" | "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor_v3" => {
                self.tensor(&name, &args)
            }
            "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err(self.bad(format!("{name} without a tensor"))),
            },
            // Tensor subclasses: the tensor is rebuilt by the inner call.
            "torch._tensor._rebuild_from_type_v2" | "torch._tensor._rebuild_from_type" => match args.as_slice() {
                [f, _, inner, ..] => {
                    let (f, inner) = (f.clone(), inner.clone());
                    self.call(f, inner)
                }
                _ => Err(self.bad(format!("{name} with too few arguments"))),
            },
            _ => Ok(Value::Object(name)),
        }
    }

    /// `_rebuild_tensor(storage, offset, size, stride)`, `_v2` adds requires_grad, hooks and
    /// metadata; `_v3` adds the dtype, for storages saved untyped.
    fn tensor(&mut self, name: &str, args: &[Value]) -> Result<Value, PthError> {
        let ints = |v: &Value| -> Option<Vec<i64>> {
            self.items(v).iter().map(|x| if let Value::Int(i) = x { Some(*i) } else { None }).collect()
        };
        let parsed = match args {
            [Value::Storage(s), Value::Int(offset), size @ Value::Tuple(_), stride @ Value::Tuple(_), ..] => {
                ints(size).zip(ints(stride)).map(|(shape, stride)| (*s, *offset, shape, stride))
            }
            _ => None,
        };
        let (storage, offset, shape, stride) =
            parsed.ok_or_else(|| self.bad(format!("malformed arguments to {name}")))?;
        let dtype = if name.ends_with("_v3") {
            match args.get(6) {
                Some(Value::Global(d)) => {
                    let d = d.strip_prefix("torch.").unwrap_or(d);
                    Dtype::from_torch(d).ok_or_else(|| d.to_string())
                }
                _ => return Err(self.bad(format!("{name} without a dtype"))),
            }
        } else {
            self.heap.storages[storage].dtype.clone()
        };
        self.heap.tensors.push(TensorRef { storage, dtype, offset, shape, stride });
        Ok(Value::Tensor(self.heap.tensors.len() - 1))
    }

    fn key(&self, v: &Value) -> Result<String, PthError> {
        match v {
            Value::Str(s) => Ok(s.to_string()),
            Value::Int(i) => Ok(i.to_string()),
            _ => Err(self.bad("a storage key is neither a string nor an integer")),
        }
    }

    /// `('storage', storage_type, key, location, numel)`; legacy files append the view
    /// `(view_key, offset, numel)` or None, and name module classes by `('module', class, ...)`.
    fn persistent_load(&mut self) -> Result<Value, PthError> {
        let pid = self.pop()?;
        let pid = self.items(&pid).to_vec();
        match pid.as_slice() {
            [Value::Str(kind), Value::Global(class), key, _location, Value::Int(numel), view @ ..]
                if &**kind == "storage" =>
            {
                let key = self.key(key)?;
                let type_name = class.rsplit('.').next().unwrap_or(class);
                let (dtype, elem_size) =
                    storage_type(type_name).ok_or_else(|| self.bad(format!("unknown storage type `{class}`")))?;
                let (offset, count) = match view {
                    [] | [Value::None] => (0, *numel),
                    [v] => match self.items(v) {
                        [_, Value::Int(offset), Value::Int(count)] => (*offset, *count),
                        _ => return Err(self.bad("malformed storage view")),
                    },
                    _ => return Err(self.bad("malformed storage id")),
                };
                let (offset, count) = (u64::try_from(offset), u64::try_from(count));
                let (Ok(offset), Ok(count)) = (offset, count) else { return Err(self.bad("negative storage size")) };
                self.heap.storages.push(Storage { key, dtype, elem_size, offset, count });
                Ok(Value::Storage(self.heap.storages.len() - 1))
            }
            [Value::Str(kind), class, ..] if &**kind == "module" => Ok(class.clone()),
            _ => Err(self.bad("a persistent id that is not a storage")),
        }
    }

    /// The tensors the loaded object holds as a state dict, by name in the file's order.
    fn state_dict(&self, object: Value) -> Result<Vec<(String, usize)>, PthError> {
        let path = self.path.to_path_buf();
        let Value::Dict(d) = object else {
            return Err(match object {
                Value::Object(class) => PthError::PickledObject { path, class: class.to_string() },
                other => PthError::NotStateDict { path, found: self.describe(&other) },
            });
        };
        let entries = &self.heap.dicts[d];
        let tensors = self.named_tensors(entries)?;
        if !tensors.is_empty() || entries.is_empty() {
            return Ok(tensors);
        }
        for key in ["state_dict", "model_state_dict", "model"] {
            let nested = entries.iter().rev().find(|(k, _)| matches!(k, Value::Str(s) if &**s == key));
            match nested.map(|(_, v)| v) {
                Some(Value::Dict(inner)) => {
                    let tensors = self.named_tensors(&self.heap.dicts[*inner])?;
                    if !tensors.is_empty() {
                        return Ok(tensors);
                    }
                }
                Some(Value::Object(class)) => return Err(PthError::PickledObject { path, class: class.to_string() }),
                _ => {}
            }
        }
        Err(PthError::NotStateDict { path, found: self.describe(&object) })
    }

    fn named_tensors(&self, entries: &[(Value, Value)]) -> Result<Vec<(String, usize)>, PthError> {
        let mut out: Vec<(String, usize)> = vec![];
        let mut index: HashMap<String, usize> = HashMap::new();
        for (key, value) in entries {
            let (Value::Str(name), value) = (key, value) else { continue };
            match value {
                Value::Tensor(t) => match index.get(&**name) {
                    Some(&i) => out[i].1 = *t, // a repeated key keeps its first place, as in a dict
                    None => {
                        index.insert(name.to_string(), out.len());
                        out.push((name.to_string(), *t));
                    }
                },
                Value::Object(class) if class.starts_with("torch._utils._rebuild") || class.starts_with("torch._tensor.") => {
                    return Err(PthError::Unsupported {
                        path: self.path.to_path_buf(),
                        what: format!("holds `{name}` as a kind of tensor glassbox cannot read (`{class}`); only dense CPU-layout tensors are read"),
                    })
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn describe(&self, v: &Value) -> String {
        match v {
            Value::None => "None".into(),
            Value::Bool => "a bool".into(),
            Value::Int(_) | Value::Long(_) => "an integer".into(),
            Value::Float => "a float".into(),
            Value::Str(_) => "a string".into(),
            Value::Bytes => "bytes".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Dict(d) => {
                let keys: Vec<String> = self.heap.dicts[*d]
                    .iter()
                    .take(8)
                    .map(|(k, _)| match k {
                        Value::Str(s) => format!("`{s}`"),
                        other => self.describe(other),
                    })
                    .collect();
                format!("a dict without tensors (keys: {})", keys.join(", "))
            }
            Value::Global(name) => format!("the Python name `{name}`"),
            Value::Storage(_) => "a bare storage".into(),
            Value::Tensor(_) => "a single tensor".into(),
            Value::Object(class) => format!("a `{class}` object"),
        }
    }
}

fn is_dict_class(name: &str) -> bool {
    matches!(name, "collections.OrderedDict" | "builtins.dict" | "__builtin__.dict")
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut it = items.into_iter();
    std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
}

/// LONG1/LONG4 payloads: little-endian two's complement of any width.
fn long(bytes: &[u8]) -> Value {
    if bytes.len() > 8 {
        return Value::Long(bytes.into());
    }
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let mut full = [if negative { 0xff } else { 0 }; 8];
    full[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(full))
}

/// Storage classes by name: the dtype (or torch's name for one glassbox does not read) and
/// the element size, which legacy files need to find where each storage ends.
fn storage_type(name: &str) -> Option<(Result<Dtype, String>, usize)> {
    let dtype = match name {
        "FloatStorage" => Dtype::F32,
        "DoubleStorage" => Dtype::F64,
        "HalfStorage" => Dtype::F16,
        "BFloat16Storage" => Dtype::BF16,
        "LongStorage" => Dtype::I64,
        "IntStorage" => Dtype::I32,
        "ShortStorage" => Dtype::I16,
        "CharStorage" => Dtype::I8,
        "ByteStorage" | "UntypedStorage" => Dtype::U8,
        "BoolStorage" => Dtype::Bool,
        _ => {
            let (torch_name, size) = match name {
                "ComplexDoubleStorage" => ("complex128", 16),
                "ComplexFloatStorage" => ("complex64", 8),
                "QInt32Storage" => ("qint32", 4),
                "QInt8Storage" => ("qint8", 1),
                "QUInt8Storage" => ("quint8", 1),
                "QUInt4x2Storage" => ("quint4x2", 1),
                "QUInt2x4Storage" => ("quint2x4", 1),
                _ => return None,
            };
            return Some((Err(torch_name.to_string()), size));
        }
    };
    Some((Ok(dtype), dtype.size()))
}

/// Copies every tensor out of its storage, reading each storage once: `fetch` gets the
/// storage and how many bytes of it to read.
fn materialize(
    path: &Path,
    heap: &Heap,
    tensors: Vec<(String, usize)>,
    swap: bool,
    mut fetch: impl FnMut(&Storage, u64) -> Result<Vec<u8>, PthError>,
) -> Result<Vec<(String, RawTensor)>, PthError> {
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for (_, t) in &tensors {
        *uses.entry(&heap.storages[heap.tensors[*t].storage].key).or_default() += 1;
    }
    let mut loaded: HashMap<&str, Vec<u8>> = HashMap::new();
    let mut out = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = &heap.tensors[t];
        let storage = &heap.storages[t.storage];
        let dtype = t.dtype.clone().map_err(|what| PthError::Unsupported {
            path: path.to_path_buf(),
            what: format!("stores `{name}` as {what}; glassbox reads {}", Dtype::ALL.map(Dtype::name).join(", ")),
        })?;
        let key = storage.key.as_str();
        let elem = storage.elem_size as u64;
        let start = storage.offset.checked_mul(elem);
        let end = storage.offset.checked_add(storage.count).and_then(|n| n.checked_mul(elem));
        let (Some(start), Some(end)) = (start, end) else {
            return Err(corrupt(path, format!("storage `{key}` is too large")));
        };
        if !loaded.contains_key(key) {
            let bytes = fetch(storage, end)?;
            loaded.insert(key, bytes);
        }
        let remaining = uses
            .get_mut(key)
            .map(|n| {
                *n -= 1;
                *n
            })
            .unwrap_or(0);
        let bytes = &loaded[key];
        let window = bytes
            .get(start as usize..end as usize)
            .ok_or_else(|| corrupt(path, format!("storage `{key}` view out of range")))?;
        let mut data = match layout(path, &name, t, dtype, window.len())? {
            Layout::Run(run) if remaining == 0 && run.len() == bytes.len() => loaded.remove(key).unwrap_or_default(),
            Layout::Run(run) => window[run].to_vec(),
            Layout::Strided => gather(window, t, dtype.size()),
        };
        if remaining == 0 {
            loaded.remove(key);
        }
        if swap {
            data.chunks_exact_mut(dtype.size()).for_each(<[u8]>::reverse);
        }
        out.push((name, RawTensor { dtype, shape: t.shape.clone(), data }));
    }
    Ok(out)
}

enum Layout {
    /// Row-major and dense: these bytes of the storage, as they are.
    Run(std::ops::Range<usize>),
    Strided,
}

/// Checks that the tensor's view stays inside its storage (`storage_bytes` long), and
/// whether it can be copied as one run.
fn layout(path: &Path, name: &str, t: &TensorRef, dtype: Dtype, storage_bytes: usize) -> Result<Layout, PthError> {
    let bad = |what: String| corrupt(path, format!("tensor `{name}` {what}"));
    if t.shape.len() != t.stride.len() {
        return Err(bad(format!("has {} sizes but {} strides", t.shape.len(), t.stride.len())));
    }
    if t.offset < 0 || t.shape.iter().chain(&t.stride).any(|&n| n < 0) {
        return Err(bad("has a negative size, stride or offset".into()));
    }
    let numel = t.shape.iter().try_fold(1u64, |n, &s| n.checked_mul(s as u64));
    let numel = numel.ok_or_else(|| bad("is too large".into()))?;
    if numel == 0 {
        return Ok(Layout::Run(0..0));
    }
    let size = dtype.size() as u64;
    let last = t.shape.iter().zip(&t.stride).try_fold(t.offset as u64, |acc, (&n, &s)| {
        (n as u64 - 1).checked_mul(s as u64).and_then(|x| x.checked_add(acc))
    });
    let available = storage_bytes as u64 / size;
    match last {
        Some(last) if last < available => {}
        _ => return Err(bad(format!("reaches past the end of its storage of {available} {dtype} elements"))),
    }
    let bytes = numel * size;
    if bytes > (storage_bytes as u64).max(MAX_BROADCAST_BYTES) {
        return Err(bad(format!(
            "would take {bytes} bytes, more than its storage; at most {MAX_BROADCAST_BYTES} are allowed"
        )));
    }
    let mut expected = 1i64;
    let mut dense = true;
    for (&n, &s) in t.shape.iter().zip(&t.stride).rev() {
        dense &= n == 1 || s == expected;
        expected *= n;
    }
    let start = (t.offset as u64 * size) as usize;
    Ok(if dense { Layout::Run(start..start + bytes as usize) } else { Layout::Strided })
}

/// Copies a strided view into row-major order; [`layout`] has checked every index.
fn gather(storage: &[u8], t: &TensorRef, size: usize) -> Vec<u8> {
    let numel: i64 = t.shape.iter().product();
    let mut out = Vec::with_capacity(numel as usize * size);
    let mut index = vec![0i64; t.shape.len()];
    for _ in 0..numel {
        let at = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<i64>();
        let at = at as usize * size;
        out.extend_from_slice(&storage[at..at + size]);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pth")).join(name)
    }

    /// A scratch copy of some bytes as a file, named for the test that writes it.
    fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("glassbox-pth-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn f16_value(bits: u16) -> f64 {
        let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
        let (exp, mantissa) = ((bits >> 10) & 0x1f, (bits & 0x3ff) as f64);
        sign * match exp {
            0 => mantissa * 2f64.powi(-24),
            31 => f64::INFINITY,
            _ => (1.0 + mantissa / 1024.0) * 2f64.powi(exp as i32 - 15),
        }
    }

    fn values(t: &RawTensor) -> Vec<f64> {
        t.data
            .chunks_exact(t.dtype.size())
            .map(|c| match t.dtype {
                Dtype::F32 => f32::from_le_bytes(c.try_into().unwrap()) as f64,
                Dtype::F64 => f64::from_le_bytes(c.try_into().unwrap()),
                Dtype::F16 => f16_value(u16::from_le_bytes(c.try_into().unwrap())),
                Dtype::BF16 => f32::from_bits((u16::from_le_bytes(c.try_into().unwrap()) as u32) << 16) as f64,
                Dtype::I64 => i64::from_le_bytes(c.try_into().unwrap()) as f64,
                Dtype::I32 => i32::from_le_bytes(c.try_into().unwrap()) as f64,
                Dtype::I16 => i16::from_le_bytes(c.try_into().unwrap()) as f64,
                Dtype::I8 => c[0] as i8 as f64,
                Dtype::U8 | Dtype::Bool => c[0] as f64,
            })
            .collect()
    }

    /// Compares every tensor of a fixture with what PyTorch said it holds.
    fn check(file: &str) {
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture("expected.json")).unwrap()).unwrap();
        let expected = expected[file].as_array().unwrap();
        let got = read(&fixture(file)).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        let want: Vec<&str> = expected.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(names, want, "{file}: names in the file's order");
        for ((name, t), e) in got.iter().zip(expected) {
            assert_eq!(t.dtype.name(), e["dtype"].as_str().unwrap(), "{file}: {name}");
            let shape: Vec<i64> = e["shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(t.shape, shape, "{file}: {name}");
            assert_eq!(t.data.len(), shape.iter().product::<i64>() as usize * t.dtype.size(), "{file}: {name}");
            let want: Vec<f64> = e["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(values(t), want, "{file}: {name}");
        }
    }

    #[test]
    fn reads_a_state_dict() {
        check("state_dict.pt");
    }

    #[test]
    fn reads_views_and_every_dtype() {
        check("views.pt");
    }

    #[test]
    fn reads_the_state_dict_of_a_checkpoint() {
        check("checkpoint.pt");
    }

    #[test]
    fn reads_the_legacy_format() {
        check("legacy.pt");
        check("views_legacy.pt");
    }

    #[test]
    fn reads_the_legacy_format_of_python_2_and_storage_views() {
        check("legacy_py2.pt");
    }

    #[test]
    fn byteswaps_a_big_endian_file() {
        check("big_endian.pt");
    }

    #[test]
    fn refuses_a_pickled_module() {
        let e = read(&fixture("module.pt")).unwrap_err().to_string();
        assert!(e.contains("module.pt"), "{e}");
        assert!(e.contains("pickled Python object `torchvision.ops.misc.Conv2dNormActivation`"), "{e}");
        assert!(e.contains("save `model.state_dict()` instead"), "{e}");
    }

    #[test]
    fn refuses_an_element_type_it_does_not_read() {
        let e = read(&fixture("complex.pt")).unwrap_err().to_string();
        assert!(e.contains("complex.pt stores `z` as complex64; glassbox reads float32"), "{e}");
    }

    #[test]
    fn refuses_a_missing_file() {
        let e = read(&fixture("no-such-file.pt")).unwrap_err();
        assert!(matches!(&e, PthError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound), "{e}");
        assert!(e.to_string().starts_with("cannot read ") && e.to_string().contains("no-such-file.pt"), "{e}");
    }

    #[test]
    fn refuses_garbage() {
        for (name, bytes) in [
            ("empty.pt", &b""[..]),
            ("text.pt", &b"this is not a tensor file"[..]),
            ("zip.pt", &b"PK\x03\x04 a broken zip archive"[..]),
            ("pickle.pt", &b"\x80\x02K\x05."[..]),
        ] {
            let path = scratch(name, bytes);
            let e = read(&path).unwrap_err().to_string();
            std::fs::remove_file(&path).unwrap();
            assert!(e.contains(name), "{e}");
            let why = match name {
                "empty.pt" => "is not a file written by torch.save: the file is empty",
                "text.pt" => "is not a file written by torch.save: it is neither a zip archive",
                "zip.pt" => "is damaged or truncated: zip archive",
                _ => "is not a file written by torch.save: a Python pickle without torch's magic number",
            };
            assert!(e.contains(why), "{e}");
        }
    }

    /// Reads bytes the way [`read`] reads a file of them, without writing one.
    fn read_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<(String, RawTensor)>, PthError> {
        match bytes.starts_with(b"PK") {
            true => read_zip(path, std::io::Cursor::new(bytes), bytes.len() as u64),
            false => read_legacy(path, bytes),
        }
    }

    #[test]
    fn refuses_a_truncated_file() {
        let bytes = std::fs::read(fixture("state_dict.pt")).unwrap();
        let path = scratch("truncated.pt", &bytes[..bytes.len() / 2]);
        let e = read(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(e.contains("truncated.pt is damaged or truncated: zip archive"), "{e}");

        for file in ["state_dict.pt", "legacy.pt", "views_legacy.pt"] {
            let bytes = std::fs::read(fixture(file)).unwrap();
            for len in 2..bytes.len() {
                let e = read_bytes(&fixture(file), &bytes[..len]).expect_err(&format!("{file} cut to {len} bytes"));
                assert!(e.to_string().contains("is damaged or truncated"), "{file} cut to {len} bytes: {e}");
            }
        }
    }

    /// Every single-byte corruption of the pickles and storages either reads or is refused;
    /// none panics or allocates without bound.
    #[test]
    fn survives_corrupted_bytes() {
        for file in ["legacy.pt", "views_legacy.pt", "legacy_py2.pt"] {
            let bytes = std::fs::read(fixture(file)).unwrap();
            for at in 0..bytes.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut bad = bytes.clone();
                    bad[at] ^= flip;
                    let _ = read_bytes(&fixture(file), &bad);
                }
            }
        }
    }

    #[test]
    fn knows_element_sizes() {
        let sizes: Vec<usize> = Dtype::ALL.iter().map(|d| d.size()).collect();
        assert_eq!(sizes, [4, 8, 2, 2, 8, 4, 2, 1, 1, 1]);
    }
}
