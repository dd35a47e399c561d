//! Builders for the responses the relay sends, with every proto2 `required` field set.

use crate::formats::pb::{
    self, inner_response, BinlogOffset, InnerResponse, Partition, StatusCode, Type,
};
use crate::formats::BinlogPos;

/// `Partition{table_name, partition_id: 0}` (classic mode).
pub fn partition(table: &str) -> Partition {
    Partition {
        table_name: table.to_string(),
        partition_id: 0,
    }
}

/// A `BinlogOffset`; with `term_index` (3.3+ peers) the two extra fields are present.
pub fn offset(p: BinlogPos, term_index: Option<(u32, u64)>) -> BinlogOffset {
    BinlogOffset {
        filenum: p.filenum,
        offset: p.offset,
        term: term_index.map(|t| t.0),
        index: term_index.map(|t| t.1),
    }
}

fn base(t: Type, code: StatusCode) -> InnerResponse {
    InnerResponse {
        r#type: t as i32,
        code: code as i32,
        ..Default::default()
    }
}

/// MetaSync OK: classic mode, `databases` tables `db0..`, one partition each. `run_id` is added
/// for 3.5+ parsers (skipped by 3.1–3.4).
pub fn meta_sync_ok(databases: u32, run_id: &str) -> InnerResponse {
    let mut r = base(Type::KMetaSync, StatusCode::KOk);
    r.meta_sync = Some(inner_response::MetaSync {
        classic_mode: true,
        tables_info: (0..databases)
            .map(|i| inner_response::meta_sync::TableInfo {
                table_name: format!("db{i}"),
                partition_num: 1,
            })
            .collect(),
        run_id: Some(run_id.to_string()),
        replication_id: None,
    });
    r
}

/// A top-level error reply (`code = kError`, never `kOther`: 3.1/3.2 cannot parse it).
pub fn error(t: Type, reply: &str) -> InnerResponse {
    let mut r = base(t, StatusCode::KError);
    r.reply = Some(reply.to_string());
    r
}

/// A TrySync reply with `code = kOk` and the given reply code.
pub fn try_sync(
    table: &str,
    code: inner_response::try_sync::ReplyCode,
    end: BinlogPos,
    session_id: Option<i32>,
) -> InnerResponse {
    let mut r = base(Type::KTrySync, StatusCode::KOk);
    r.try_sync = Some(inner_response::TrySync {
        reply_code: code as i32,
        partition: partition(table),
        binlog_offset: Some(offset(end, None)),
        session_id,
    });
    r
}

/// A DBSync reply.
pub fn db_sync(table: &str, session_id: i32) -> InnerResponse {
    let mut r = base(Type::KDbSync, StatusCode::KOk);
    r.db_sync = Some(inner_response::DbSync {
        partition: partition(table),
        session_id,
    });
    r
}

/// One pushed item (empty `binlog` and offset 0:0 = keepalive). The item's bytes are shared
/// (a journal item read once for every slave), not copied.
pub fn binlog_item(
    table: &str,
    end: BinlogPos,
    term_index: Option<(u32, u64)>,
    bytes: impl Into<bytes::Bytes>,
    session_id: i32,
) -> inner_response::BinlogSync {
    inner_response::BinlogSync {
        partition: partition(table),
        binlog_offset: offset(end, term_index),
        binlog: bytes.into(),
        session_id,
    }
}

/// A BinlogSync frame of items.
pub fn binlog_sync(items: Vec<inner_response::BinlogSync>) -> InnerResponse {
    let mut r = base(Type::KBinlogSync, StatusCode::KOk);
    r.binlog_sync = items;
    r
}

/// RemoveSlaveNode reply naming the relay.
pub fn remove_slave_node(ip: &str, port: i32, tables: &[String]) -> InnerResponse {
    let mut r = base(Type::KRemoveSlaveNode, StatusCode::KOk);
    r.remove_slave_node = tables
        .iter()
        .map(|t| inner_response::RemoveSlaveNode {
            node: pb::Node {
                ip: ip.to_string(),
                port,
            },
            partition: partition(t),
        })
        .collect();
    r
}
