//! [`Reply`]: a Redis reply, typed. Redis (RESP2, as the Upstash REST API exposes it) answers
//! with nil, integers, byte strings and arrays; status replies such as `OK` arrive as byte
//! strings. Conversions name what was expected so a shape mismatch is a readable error.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn bulk(text: impl Into<Vec<u8>>) -> Self {
        Reply::Bulk(text.into())
    }

    /// Nil → `None`, a byte string → `Some(bytes)`.
    pub fn into_optional_bytes(self) -> Result<Option<Vec<u8>>, String> {
        match self {
            Reply::Nil => Ok(None),
            Reply::Bulk(bytes) => Ok(Some(bytes)),
            other => Err(format!("expected a string or nil, got {other:?}")),
        }
    }

    pub fn into_int(self) -> Result<i64, String> {
        match self {
            Reply::Int(n) => Ok(n),
            other => Err(format!("expected an integer, got {other:?}")),
        }
    }

    pub fn into_array(self) -> Result<Vec<Reply>, String> {
        match self {
            Reply::Array(items) => Ok(items),
            other => Err(format!("expected an array, got {other:?}")),
        }
    }

    /// An array of byte strings as UTF-8 texts (`SMEMBERS`, `LRANGE`, `SCAN` keys).
    pub fn into_texts(self) -> Result<Vec<String>, String> {
        self.into_array()?.into_iter().map(Reply::into_string).collect()
    }

    /// A flat `[k1, v1, k2, v2, …]` array (`HGETALL`, `ZRANGE … WITHSCORES`) as pairs.
    pub fn into_pairs(self) -> Result<Vec<(String, String)>, String> {
        let texts = self.into_texts()?;
        if texts.len() % 2 != 0 {
            return Err(format!("expected pairs, got {} items", texts.len()));
        }
        let mut items = texts.into_iter();
        Ok(std::iter::from_fn(|| Some((items.next()?, items.next()?))).collect())
    }

    /// A byte string as UTF-8 text.
    pub fn into_string(self) -> Result<String, String> {
        match self {
            Reply::Bulk(bytes) => String::from_utf8(bytes).map_err(|e| format!("reply is not UTF-8: {e}")),
            other => Err(format!("expected a string, got {other:?}")),
        }
    }
}
