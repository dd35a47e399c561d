//! Presence check for proto2 `required` fields. prost always *emits* required fields, but does
//! not check on decode that they were present; a real Pika rejects such a message (its
//! `ParseFromArray` fails and the connection is closed), and so must we. This walks the protobuf
//! wire format once against a table of the required fields, before prost decodes the message.

use super::FormatError;

/// A message's fields that matter for the check.
pub struct MsgSchema {
    /// Message name for error text.
    pub name: &'static str,
    /// Fields to look at.
    pub fields: &'static [FieldSchema],
}

/// One field of a [`MsgSchema`].
pub struct FieldSchema {
    /// Field number.
    pub tag: u32,
    /// Field name for error text.
    pub name: &'static str,
    /// Whether it must be present.
    pub required: bool,
    /// Schema of a message-typed field, to check recursively.
    pub sub: Option<&'static MsgSchema>,
}

const fn f(
    tag: u32,
    name: &'static str,
    required: bool,
    sub: Option<&'static MsgSchema>,
) -> FieldSchema {
    FieldSchema {
        tag,
        name,
        required,
        sub,
    }
}

static OFFSET: MsgSchema = MsgSchema {
    name: "BinlogOffset",
    fields: &[f(1, "filenum", true, None), f(2, "offset", true, None)],
};
static NODE: MsgSchema = MsgSchema {
    name: "Node",
    fields: &[f(1, "ip", true, None), f(2, "port", true, None)],
};
static PARTITION: MsgSchema = MsgSchema {
    name: "Partition",
    fields: &[
        f(1, "table_name", true, None),
        f(2, "partition_id", true, None),
    ],
};
static REQ_META: MsgSchema = MsgSchema {
    name: "InnerRequest.MetaSync",
    fields: &[f(1, "node", true, Some(&NODE))],
};
static REQ_TRY: MsgSchema = MsgSchema {
    name: "InnerRequest.TrySync",
    fields: &[
        f(1, "node", true, Some(&NODE)),
        f(2, "partition", true, Some(&PARTITION)),
        f(3, "binlog_offset", true, Some(&OFFSET)),
    ],
};
static REQ_DB: MsgSchema = MsgSchema {
    name: "InnerRequest.DBSync",
    fields: REQ_TRY.fields,
};
static REQ_BINLOG: MsgSchema = MsgSchema {
    name: "InnerRequest.BinlogSync",
    fields: &[
        f(1, "node", true, Some(&NODE)),
        f(2, "table_name", true, None),
        f(3, "partition_id", true, None),
        f(4, "ack_range_start", true, Some(&OFFSET)),
        f(5, "ack_range_end", true, Some(&OFFSET)),
        f(6, "session_id", true, None),
        f(7, "first_send", true, None),
    ],
};
static REQ_REMOVE: MsgSchema = MsgSchema {
    name: "InnerRequest.RemoveSlaveNode",
    fields: &[
        f(1, "node", true, Some(&NODE)),
        f(2, "partition", true, Some(&PARTITION)),
    ],
};
/// `InnerRequest` (slave → master).
pub static INNER_REQUEST: MsgSchema = MsgSchema {
    name: "InnerRequest",
    fields: &[
        f(1, "type", true, None),
        f(2, "meta_sync", false, Some(&REQ_META)),
        f(3, "try_sync", false, Some(&REQ_TRY)),
        f(4, "db_sync", false, Some(&REQ_DB)),
        f(5, "binlog_sync", false, Some(&REQ_BINLOG)),
        f(6, "remove_slave_node", false, Some(&REQ_REMOVE)),
    ],
};
static TABLE_INFO: MsgSchema = MsgSchema {
    name: "InnerResponse.MetaSync.TableInfo",
    fields: &[
        f(1, "table_name", true, None),
        f(2, "partition_num", true, None),
    ],
};
static RESP_META: MsgSchema = MsgSchema {
    name: "InnerResponse.MetaSync",
    fields: &[
        f(1, "classic_mode", true, None),
        f(2, "tables_info", false, Some(&TABLE_INFO)),
    ],
};
static RESP_TRY: MsgSchema = MsgSchema {
    name: "InnerResponse.TrySync",
    fields: &[
        f(1, "reply_code", true, None),
        f(2, "partition", true, Some(&PARTITION)),
        f(3, "binlog_offset", false, Some(&OFFSET)),
    ],
};
static RESP_DB: MsgSchema = MsgSchema {
    name: "InnerResponse.DBSync",
    fields: &[
        f(1, "partition", true, Some(&PARTITION)),
        f(2, "session_id", true, None),
    ],
};
static RESP_BINLOG: MsgSchema = MsgSchema {
    name: "InnerResponse.BinlogSync",
    fields: &[
        f(1, "partition", true, Some(&PARTITION)),
        f(2, "binlog_offset", true, Some(&OFFSET)),
        f(3, "binlog", true, None),
        f(4, "session_id", true, None),
    ],
};
static RESP_REMOVE: MsgSchema = MsgSchema {
    name: "InnerResponse.RemoveSlaveNode",
    fields: REQ_REMOVE.fields,
};
/// `InnerResponse` (master → slave).
pub static INNER_RESPONSE: MsgSchema = MsgSchema {
    name: "InnerResponse",
    fields: &[
        f(1, "type", true, None),
        f(2, "code", true, None),
        f(4, "meta_sync", false, Some(&RESP_META)),
        f(5, "db_sync", false, Some(&RESP_DB)),
        f(6, "try_sync", false, Some(&RESP_TRY)),
        f(7, "binlog_sync", false, Some(&RESP_BINLOG)),
        f(8, "remove_slave_node", false, Some(&RESP_REMOVE)),
    ],
};

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        if shift == 63 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Checks that every required field of `schema` (recursively, for present message fields) is in
/// `buf`. Wire-format errors are reported too (prost would report them as well, less precisely).
pub fn check_required(buf: &[u8], schema: &MsgSchema) -> Result<(), FormatError> {
    let bad = |d: String| FormatError::invalid("protobuf message", d);
    let mut seen = [false; 16];
    let mut pos = 0;
    while pos < buf.len() {
        let key =
            varint(buf, &mut pos).ok_or_else(|| bad(format!("{}: bad field key", schema.name)))?;
        let tag = (key >> 3) as u32;
        let wire = key & 7;
        let field = schema.fields.iter().find(|fs| fs.tag == tag);
        if let Some(fs) = field {
            if (fs.tag as usize) < seen.len() {
                seen[fs.tag as usize] = true;
            }
        }
        match wire {
            0 => {
                varint(buf, &mut pos).ok_or_else(|| bad(format!("{}: bad varint", schema.name)))?;
            }
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let len = varint(buf, &mut pos)
                    .ok_or_else(|| bad(format!("{}: bad length", schema.name)))?;
                let end = pos
                    .checked_add(len as usize)
                    .filter(|&e| e <= buf.len() && len <= buf.len() as u64)
                    .ok_or_else(|| {
                        bad(format!("{}: field {tag} runs past the end", schema.name))
                    })?;
                if let Some(sub) = field.and_then(|fs| fs.sub) {
                    check_required(&buf[pos..end], sub)?;
                }
                pos = end;
            }
            w => return Err(bad(format!("{}: unsupported wire type {w}", schema.name))),
        }
        if pos > buf.len() {
            return Err(bad(format!("{}: truncated", schema.name)));
        }
    }
    for fs in schema.fields.iter().filter(|fs| fs.required) {
        if !seen[fs.tag as usize] {
            return Err(bad(format!(
                "{} is missing its required field `{}`",
                schema.name, fs.name
            )));
        }
    }
    Ok(())
}
