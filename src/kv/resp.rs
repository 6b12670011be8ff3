//! A plain-TCP Redis connection of a scan's own, whose replies are read by a small RESP2
//! reader: each field and value is a slice of the read buffer (no copy), and the elements of a
//! large reply are handed on as they arrive. redis-rs copies every bulk string into a `Vec`
//! through a general parser (≈ 175 ns an element: two thirds of the client's time in a scan
//! of 20,000 records, measured in session 25); this reader slices them for a few ns.
//!
//! Commands are packed by redis-rs (`Cmd::get_packed_command`), and an error reply is parsed
//! by redis-rs into its own error, so messages and error kinds are the same as on the
//! multiplexed connection. Only what a scan needs is read: simple replies, integers, bulk
//! strings and arrays of bulk strings (RESP2, which a connection speaks until it says HELLO).

use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use redis::{RedisError, RedisResult, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes asked of the socket at a time (a scan of 20,000 small records is ≈ 1.5 MB).
const READ_AHEAD: usize = 256 * 1024;

/// The longest header line accepted (an error message is the longest a server sends).
const MAX_LINE: usize = 1 << 20;

/// The longest bulk string accepted (Redis's own `proto-max-bulk-len` default): a longer
/// length is refused before anything is allocated for it.
const MAX_BULK: usize = 512 << 20;

/// Elements of an array reserved before they arrive (an array's length is the server's word).
pub(super) const MAX_RESERVE: usize = 4096;

/// What a connection says when it is opened.
pub(super) struct Hello<'a> {
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub db: i64,
    pub client_name: Option<&'a str>,
}

/// One connection. A reply that was not read to its end leaves it unusable: it is reused
/// only after [`OwnConn::settled`].
pub(super) struct OwnConn {
    stream: TcpStream,
    buf: BytesMut,
    timeout: Option<Duration>,
    settled: bool,
}

/// The header of one reply or array element.
enum Head {
    /// `+text`
    Simple(String),
    /// `-CODE message`: the whole line, CRLF included, for redis-rs to parse.
    Error(Vec<u8>),
    /// `:n`
    Int(i64),
    /// `$n` (-1: nil); the body is still to read.
    Bulk(i64),
    /// `*n` (-1: nil); the elements are still to read.
    Array(i64),
}

impl OwnConn {
    /// Connects to `host:port` within `connect_timeout` and says `hello` (AUTH, SELECT,
    /// CLIENT SETNAME, pipelined). `timeout` bounds each later wait for the server: a send,
    /// or the next bytes of a reply (a large reply streams for as long as bytes keep coming).
    pub async fn connect(
        host: &str,
        port: u16,
        connect_timeout: Duration,
        timeout: Option<Duration>,
        hello: Hello<'_>,
    ) -> RedisResult<OwnConn> {
        let opening = async {
            let stream = TcpStream::connect((host, port)).await?;
            stream.set_nodelay(true)?;
            let mut conn = OwnConn {
                stream,
                buf: BytesMut::with_capacity(READ_AHEAD),
                timeout: None,
                settled: true,
            };
            let mut packed = Vec::new();
            let mut replies = 0;
            if let Some(password) = hello.password {
                let mut auth = redis::cmd("AUTH");
                if let Some(user) = hello.username {
                    auth.arg(user);
                }
                auth.arg(password).write_packed_command(&mut packed);
                replies += 1;
            }
            if hello.db != 0 {
                redis::cmd("SELECT")
                    .arg(hello.db)
                    .write_packed_command(&mut packed);
                replies += 1;
            }
            if let Some(name) = hello.client_name {
                redis::cmd("CLIENT")
                    .arg("SETNAME")
                    .arg(name)
                    .write_packed_command(&mut packed);
                replies += 1;
            }
            if replies > 0 {
                conn.send(&packed).await?;
                for _ in 0..replies {
                    conn.value().await?;
                }
            }
            Ok::<_, RedisError>(conn)
        };
        let mut conn = tokio::time::timeout(connect_timeout, opening)
            .await
            .map_err(|_| timed_out("connecting"))??;
        conn.timeout = timeout;
        conn.settled = true;
        Ok(conn)
    }

    /// Whether every reply asked for was read to its end and nothing more came (the
    /// connection can be reused).
    pub fn is_settled(&self) -> bool {
        self.settled && self.buf.is_empty()
    }

    /// Marks every reply asked for as read.
    pub fn settled(&mut self) {
        self.settled = true;
    }

    /// Sends packed commands (their replies are then read in order).
    pub async fn send(&mut self, packed: &[u8]) -> RedisResult<()> {
        self.settled = false;
        let write = self.stream.write_all(packed);
        match self.timeout {
            Some(t) => tokio::time::timeout(t, write)
                .await
                .map_err(|_| timed_out("sending"))??,
            None => write.await?,
        }
        Ok(())
    }

    /// One reply that is not an array, as redis-rs's `Value` (an error reply is `Err`, and
    /// leaves the connection usable).
    pub async fn value(&mut self) -> RedisResult<Value> {
        match self.head().await? {
            Head::Simple(s) if s == "OK" => Ok(Value::Okay),
            Head::Simple(s) => Ok(Value::SimpleString(s)),
            Head::Error(line) => Err(server_error(&line)),
            Head::Int(n) => Ok(Value::Int(n)),
            Head::Bulk(n) if n < 0 => Ok(Value::Nil),
            Head::Bulk(n) => Ok(Value::BulkString(self.body(n).await?.to_vec())),
            Head::Array(_) => Err(self.unreadable("an array where one value was expected")),
        }
    }

    /// The length of an array reply (0 for a nil array); an error reply is `Err`.
    pub async fn array_len(&mut self) -> RedisResult<usize> {
        match self.head().await? {
            Head::Array(n) => Ok(usize::try_from(n).unwrap_or(0)),
            Head::Error(line) => Err(server_error(&line)),
            _ => Err(self.unreadable("another reply where an array was expected")),
        }
    }

    /// The next element of an array of strings, as a slice of the read buffer.
    pub async fn element(&mut self) -> RedisResult<Bytes> {
        match self.head().await? {
            Head::Bulk(n) if n >= 0 => self.body(n).await,
            Head::Simple(s) => Ok(Bytes::from(s)),
            _ => Err(self.unreadable("another element where a string was expected")),
        }
    }

    /// The next header line, consumed.
    async fn head(&mut self) -> RedisResult<Head> {
        let mut from = 0;
        let end = loop {
            if let Some(i) = self.buf[from..].iter().position(|&b| b == b'\n') {
                break from + i;
            }
            from = self.buf.len();
            if from > MAX_LINE {
                return Err(self.unreadable("a header line of over 1 MiB"));
            }
            self.read_more(1).await?;
        };
        if end < 2 || self.buf[end - 1] != b'\r' {
            return Err(self.unreadable("a line that does not end in CRLF"));
        }
        let kind = self.buf[0];
        let number = parse_int(&self.buf[1..end - 1]);
        let head = match (kind, number) {
            (b'+', _) => Head::Simple(String::from_utf8_lossy(&self.buf[1..end - 1]).into_owned()),
            (b'-', _) => Head::Error(self.buf[..=end].to_vec()),
            (b':', Some(n)) => Head::Int(n),
            (b'$', Some(n)) => Head::Bulk(n),
            (b'*', Some(n)) => Head::Array(n),
            (b':' | b'$' | b'*', None) => {
                return Err(self.unreadable("a length or integer that is not a number"));
            }
            (other, _) => {
                return Err(self.unreadable(&format!(
                    "a reply of type '{}' (RESP2 has + - : $ *)",
                    char::from(other).escape_default()
                )));
            }
        };
        self.buf.advance(end + 1);
        Ok(head)
    }

    /// The body of a bulk string of `len` bytes (and its CRLF), consumed.
    async fn body(&mut self, len: i64) -> RedisResult<Bytes> {
        let len = match usize::try_from(len) {
            Ok(n) if n <= MAX_BULK => n,
            _ => return Err(self.unreadable("a bulk string length over 512 MiB")),
        };
        if self.buf.len() < len + 2 {
            self.read_more(len + 2).await?;
        }
        if &self.buf[len..len + 2] != b"\r\n" {
            return Err(self.unreadable("a bulk string that does not end in CRLF"));
        }
        let bytes = self.buf.split_to(len).freeze();
        self.buf.advance(2);
        Ok(bytes)
    }

    /// Reads until the buffer holds at least `need` bytes (at least one more when it already
    /// does).
    async fn read_more(&mut self, need: usize) -> RedisResult<()> {
        let need = need.max(self.buf.len() + 1);
        while self.buf.len() < need {
            if self.buf.capacity() == self.buf.len() {
                // Grows as the data arrives, not by what the server announced.
                self.buf
                    .reserve((need - self.buf.len()).clamp(READ_AHEAD, 16 * READ_AHEAD));
            }
            let read = self.stream.read_buf(&mut self.buf);
            let n = match self.timeout {
                Some(t) => tokio::time::timeout(t, read)
                    .await
                    .map_err(|_| timed_out("waiting for the reply"))??,
                None => read.await?,
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection in the middle of a reply",
                )
                .into());
            }
        }
        Ok(())
    }

    /// A reply this reader cannot read: the connection is not reused.
    pub fn unreadable(&mut self, what: &str) -> RedisError {
        self.settled = false;
        // An Io kind: the connection is dropped and a read is retried on a new one.
        RedisError::from((
            redis::ErrorKind::Io,
            "unreadable reply",
            format!("the server sent {what}"),
        ))
    }
}

/// The error a server's `-CODE message` line stands for, parsed by redis-rs.
fn server_error(line: &[u8]) -> RedisError {
    match redis::parse_redis_value(line) {
        Ok(Value::ServerError(e)) => e.into(),
        Ok(other) => RedisError::from((
            redis::ErrorKind::Parse,
            "unreadable error reply",
            format!("{other:?}"),
        )),
        Err(e) => e,
    }
}

fn timed_out(doing: &str) -> RedisError {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("timed out {doing} (connection or response timeout)"),
    )
    .into()
}

/// A RESP integer: an optional minus and decimal digits.
fn parse_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A connection to a local listener that sends `script` in pieces of `piece` bytes.
    async fn conn_reading(script: Vec<u8>, piece: usize) -> OwnConn {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            for chunk in script.chunks(piece.max(1)) {
                s.write_all(chunk).await.expect("write");
                s.flush().await.expect("flush");
                tokio::task::yield_now().await;
            }
        });
        let hello = Hello {
            username: None,
            password: None,
            db: 0,
            client_name: None,
        };
        OwnConn::connect(
            "127.0.0.1",
            port,
            Duration::from_secs(5),
            Some(Duration::from_secs(5)),
            hello,
        )
        .await
        .expect("connect")
    }

    #[test]
    fn integers_are_parsed_strictly() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"-1"), Some(-1));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b"1x"), None);
        assert_eq!(parse_int(b" 1"), None);
    }

    /// Every kind of reply, split at every possible place (1-byte pieces and larger).
    #[tokio::test]
    async fn replies_are_read_whatever_the_pieces() {
        let script = b"+OK\r\n:-42\r\n$5\r\nhe\r\nl\r\n$-1\r\n$0\r\n\r\n*4\r\n$1\r\na\r\n$3\r\n\x00\xff1\r\n+x\r\n$2\r\n{}\r\n*-1\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n:7\r\n".to_vec();
        for piece in [1, 2, 3, 7, 64, 4096] {
            let mut c = conn_reading(script.clone(), piece).await;
            assert_eq!(c.value().await.expect("ok"), Value::Okay);
            assert_eq!(c.value().await.expect("int"), Value::Int(-42));
            assert_eq!(
                c.value().await.expect("bulk"),
                Value::BulkString(b"he\r\nl".to_vec()),
                "a body may hold CRLF"
            );
            assert_eq!(c.value().await.expect("nil"), Value::Nil);
            assert_eq!(c.value().await.expect("empty"), Value::BulkString(vec![]));
            assert_eq!(c.array_len().await.expect("array"), 4);
            assert_eq!(&c.element().await.expect("a")[..], b"a");
            assert_eq!(&c.element().await.expect("bin")[..], b"\x00\xff1");
            assert_eq!(&c.element().await.expect("simple")[..], b"x");
            assert_eq!(&c.element().await.expect("{}")[..], b"{}");
            assert_eq!(c.array_len().await.expect("nil array"), 0);
            let err = c.value().await.expect_err("a server error");
            assert_eq!(err.code(), Some("WRONGTYPE"), "{err}");
            assert!(err.to_string().contains("wrong kind of value"), "{err}");
            assert_eq!(c.value().await.expect("after the error"), Value::Int(7));
        }
    }

    /// A reply this reader does not know, a broken framing, or a connection that closes in
    /// the middle of a reply is an Io error (the connection is dropped, a read retried).
    #[tokio::test]
    async fn unreadable_replies_are_errors_not_panics() {
        for (script, what) in [
            (&b"%1\r\n"[..], "type"),
            (&b":12a\r\n"[..], "number"),
            (&b"$3\r\nabcd\r\n"[..], "CRLF"),
            (&b"+OK\n"[..], "CRLF"),
            (&b"$10\r\nabc"[..], "closed"),
            (&b"$-5\r\n"[..], "nil"),
            (&b"$1000000000000\r\n"[..], "512 MiB"),
        ] {
            let mut c = conn_reading(script.to_vec(), 2).await;
            c.settled = false;
            match c.value().await {
                Ok(Value::Nil) if what == "nil" => continue,
                Ok(v) => panic!("{script:?} read as {v:?}"),
                Err(e) => {
                    assert!(e.is_io_error() || e.is_connection_dropped(), "{what}: {e}");
                    assert!(e.to_string().contains(what), "{what}: {e}");
                    assert!(!c.is_settled());
                }
            }
        }
        let mut c = conn_reading(b"$3\r\nabc\r\n".to_vec(), 1).await;
        assert!(c.array_len().await.is_err(), "a string is not an array");
    }
}
