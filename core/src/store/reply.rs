//! [`Reply`]: a Redis reply, typed. Redis (RESP2, as the Upstash REST API exposes it) answers
//! with nil, integers, byte strings and arrays; status replies such as `OK` arrive as byte
//! strings. Conversions name what was expected so a shape mismatch is a readable error
//! ([`ReplyShapeError`]).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
}

/// A reply that is not of the shape a conversion asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyShapeError {
    /// Another kind of reply (`expected` says which kinds would do).
    #[error("expected {expected}, got {got:?}")]
    Kind { expected: &'static str, got: Reply },
    /// A byte string where text is needed, and the bytes are not UTF-8.
    #[error("reply is not UTF-8: {0}")]
    NotUtf8(#[from] std::string::FromUtf8Error),
    /// A flat array read as pairs with an odd number of items.
    #[error("expected pairs, got {0} items")]
    OddPairs(usize),
}

impl Reply {
    pub fn bulk(text: impl Into<Vec<u8>>) -> Self {
        Reply::Bulk(text.into())
    }

    /// Nil → `None`, a byte string → `Some(bytes)`.
    pub fn into_optional_bytes(self) -> Result<Option<Vec<u8>>, ReplyShapeError> {
        match self {
            Reply::Nil => Ok(None),
            Reply::Bulk(bytes) => Ok(Some(bytes)),
            got => Err(ReplyShapeError::Kind { expected: "a string or nil", got }),
        }
    }

    pub fn into_int(self) -> Result<i64, ReplyShapeError> {
        match self {
            Reply::Int(n) => Ok(n),
            got => Err(ReplyShapeError::Kind { expected: "an integer", got }),
        }
    }

    pub fn into_array(self) -> Result<Vec<Reply>, ReplyShapeError> {
        match self {
            Reply::Array(items) => Ok(items),
            got => Err(ReplyShapeError::Kind { expected: "an array", got }),
        }
    }

    /// An array of byte strings as UTF-8 texts (`SMEMBERS`, `LRANGE`, `SCAN` keys).
    pub fn into_texts(self) -> Result<Vec<String>, ReplyShapeError> {
        self.into_array()?.into_iter().map(Reply::into_string).collect()
    }

    /// A flat `[k1, v1, k2, v2, …]` array (`HGETALL`, `ZRANGE … WITHSCORES`) as pairs.
    pub fn into_pairs(self) -> Result<Vec<(String, String)>, ReplyShapeError> {
        let texts = self.into_texts()?;
        if texts.len() % 2 != 0 {
            return Err(ReplyShapeError::OddPairs(texts.len()));
        }
        let mut items = texts.into_iter();
        Ok(std::iter::from_fn(|| Some((items.next()?, items.next()?))).collect())
    }

    /// A byte string as UTF-8 text.
    pub fn into_string(self) -> Result<String, ReplyShapeError> {
        match self {
            Reply::Bulk(bytes) => Ok(String::from_utf8(bytes)?),
            got => Err(ReplyShapeError::Kind { expected: "a string", got }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_of_another_shape_says_what_was_expected_and_what_came() {
        assert_eq!(Reply::Int(1).into_string().unwrap_err().to_string(), "expected a string, got Int(1)");
        assert_eq!(Reply::Nil.into_int().unwrap_err().to_string(), "expected an integer, got Nil");
        let odd = Reply::Array(vec![Reply::bulk("field")]).into_pairs().unwrap_err();
        assert_eq!(odd, ReplyShapeError::OddPairs(1));
        let not_utf8 = Reply::Bulk(vec![0xff]).into_string().unwrap_err();
        assert!(matches!(&not_utf8, ReplyShapeError::NotUtf8(_)), "{not_utf8:?}");
        assert!(not_utf8.to_string().starts_with("reply is not UTF-8: "), "{not_utf8}");
    }
}
