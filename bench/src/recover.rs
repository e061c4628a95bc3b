//! `recover`: how long a client that missed N publications waits to have
//! them all (issue 18's room history). Per run: subscribe to a fresh room
//! (`{"target":"bench","room":"recover-<k>"}`) to learn its position,
//! disconnect, publish N through `/trigger/`, reconnect and subscribe with
//! `since`; the time is from sending that subscribe to reading
//! `{"type":"recovered"}` after the N frames. The server needs a
//! `[[history.rooms]]` entry keeping at least N for the room.

use std::time::Instant;

use serde_json::json;

use crate::{
    Target,
    http::Http,
    report::{self, emit},
    ws::{Ws, find, find_u64},
};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RecoverArgs {
    /// Publications missed before reconnecting.
    #[arg(long, default_value_t = 1000)]
    missed: usize,
    /// Extra payload bytes per publication.
    #[arg(long, default_value_t = 0)]
    pad: usize,
}

/// The `epoch` string of a subscribe reply.
fn epoch_of(frame: &[u8]) -> Option<String> {
    let key = br#""epoch":""#;
    let start = find(frame, key)? + key.len();
    let len = frame[start..].iter().position(|&b| b == b'"')?;
    String::from_utf8(frame[start..start + len].to_vec()).ok()
}

/// The next text frame's bytes.
async fn next(ws: &mut Ws) -> Result<Vec<u8>, String> {
    let range = ws.recv().await.map_err(|e| e.to_string())?;
    Ok(ws.bytes(range).to_vec())
}

/// One run: (milliseconds to recover, publications received, server CPU).
async fn run_once(
    target: &Target,
    args: &RecoverArgs,
    ctx: &crate::Ctx,
    k: usize,
) -> Result<(f64, u64, serde_json::Value), String> {
    let room = json!({"target": "bench", "room": format!("recover-{k}")});
    let subscribe = json!({"type": "subscribe", "room": room, "requestId": "1"});
    let mut ws = Ws::connect(target.addr, &ctx.ws_path(), None, 64 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    ws.expect(br#""is_authorized":true"#, 0)
        .await
        .map_err(|e| e.to_string())?;
    ws.send_text(subscribe.to_string().as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let reply = loop {
        let frame = next(&mut ws).await?;
        if find(&frame, br#""code":"#).is_some() {
            break frame;
        }
    };
    let (Some(offset), Some(epoch)) = (find_u64(&reply, br#""offset":"#), epoch_of(&reply)) else {
        return Err(format!(
            "the room keeps no history (add a [[history.rooms]] entry): {}",
            String::from_utf8_lossy(&reply)
        ));
    };
    drop(ws);

    let mut http = Http::connect(target.addr)
        .await
        .map_err(|e| e.to_string())?;
    let pad = "x".repeat(args.pad);
    for n in 0..args.missed {
        let body = json!({"rooms": [room], "data": {"bench_seq": n, "pad": pad}}).to_string();
        let (status, text) = http
            .request("POST", "/trigger/", &ctx.trigger_token, body.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!(
                "trigger: {status} {}",
                String::from_utf8_lossy(&text)
            ));
        }
    }

    let mut ws = Ws::connect(target.addr, &ctx.ws_path(), None, 64 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    ws.expect(br#""is_authorized":true"#, 0)
        .await
        .map_err(|e| e.to_string())?;
    let mut again = subscribe.clone();
    again["since"] = json!({"offset": offset, "epoch": epoch});
    let cpu = report::CpuSpan::start(target.pid);
    let start = Instant::now();
    ws.send_text(again.to_string().as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut received = 0u64;
    loop {
        let frame = next(&mut ws).await?;
        if find(&frame, br#""type":"publish""#).is_some() {
            received += 1;
        } else if find(&frame, br#""type":"recovered""#).is_some() {
            if find(&frame, br#""complete":true"#).is_none() {
                return Err(format!("incomplete: {}", String::from_utf8_lossy(&frame)));
            }
            break;
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    Ok((
        ms,
        received,
        cpu.finish(target.pid).json(received, "publication"),
    ))
}

/// Runs every target once per round, alternating, and reports each run and
/// the median time.
pub(crate) async fn run(
    targets: &[Target],
    args: &RecoverArgs,
    rounds: usize,
    ctx: &crate::Ctx,
) -> Result<(), String> {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut k = 0;
    for round in 1..=rounds {
        for (t, target) in targets.iter().enumerate() {
            k += 1;
            let (ms, received, cpu) = run_once(target, args, ctx, k).await?;
            if received != args.missed as u64 {
                return Err(format!("{received} recovered of {} missed", args.missed));
            }
            emit(
                json!({"scenario": "recover", "target": target.name, "round": round,
                    "missed": args.missed, "pad": args.pad, "recover_ms": report::round(ms),
                    "cpu": cpu}),
                &[
                    "recover".into(),
                    target.name.clone(),
                    format!("{} missed", args.missed),
                    format!("{ms:.1} ms"),
                    format!(
                        "server {} ns CPU/publication",
                        cpu["server_cpu_ns_per_publication"]
                    ),
                ],
            );
            times[t].push(ms);
        }
    }
    for (t, target) in targets.iter().enumerate() {
        let ms = report::median(&mut times[t]);
        emit(
            json!({"scenario": "recover-summary", "target": target.name, "rounds": rounds,
                "missed": args.missed, "median_recover_ms": report::round(ms)}),
            &[
                format!("recover median of {rounds}"),
                target.name.clone(),
                format!("{} missed", args.missed),
                format!("{ms:.1} ms"),
            ],
        );
    }
    Ok(())
}
