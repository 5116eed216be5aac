//! One table of port blocks: each test module takes its ports from its own block, high and
//! used by no other, so one test's bind probe or listener never makes another skip a port.
//! Within a module, each test takes its own part of the block.

/// (module, first port, last port).
pub const BLOCKS: &[(&str, u16, u16)] = &[
    ("allocate", 21000, 21999),
    ("status", 22000, 22999),
    ("workflow", 23000, 23999),
    ("machine", 24000, 24999),
    ("robust", 25000, 25999),
    ("bad_input", 26000, 26999),
    ("promise", 27000, 27599),
    ("anyrepo", 27600, 27999),
    ("owner", 28000, 28299),
    ("choice", 28300, 28799),
    ("envfiles", 28800, 28999),
    ("userfiles", 29000, 29099),
    ("claims", 29100, 29199),
    ("newcomer", 29200, 29299),
    ("agents", 29300, 29399),
    ("leases", 29400, 29499),
    ("mcp", 29500, 29599),
    ("proxy", 29600, 29699),
    ("browser", 29700, 29799),
    ("hostile", 29800, 29849),
    ("limits", 29850, 29899),
    ("variables", 20100, 20199),
    ("fences", 20200, 20299),
    ("windows", 20300, 20399),
    ("compose", 20400, 20499),
    ("channels", 20500, 20599),
    ("https", 20600, 20699),
];

/// Numbers in the port zone that are not ports: a uid and gid, npm's fetch timeout.
const NOT_PORTS: &[(&str, u32)] = &[
    ("userfiles", 23456),
    ("anyrepo", 20000),
    ("allocate", 22000),
];

fn sources() -> Vec<(&'static str, &'static str)> {
    vec![
        ("allocate", include_str!("allocate.rs")),
        ("status", include_str!("status.rs")),
        ("workflow", include_str!("workflow.rs")),
        ("machine", include_str!("machine.rs")),
        ("robust", include_str!("robust.rs")),
        ("bad_input", include_str!("bad_input.rs")),
        ("promise", include_str!("promise.rs")),
        ("anyrepo", include_str!("anyrepo.rs")),
        ("owner", include_str!("owner.rs")),
        ("choice", include_str!("choice.rs")),
        ("envfiles", include_str!("envfiles.rs")),
        ("userfiles", include_str!("userfiles.rs")),
        ("claims", include_str!("claims.rs")),
        ("newcomer", include_str!("newcomer.rs")),
        ("agents", include_str!("agents.rs")),
        ("leases", include_str!("leases.rs")),
        ("mcp", include_str!("mcp.rs")),
        ("proxy", include_str!("proxy.rs")),
        ("browser", include_str!("browser.rs")),
        ("hostile", include_str!("hostile.rs")),
        ("limits", include_str!("limits.rs")),
        ("variables", include_str!("variables.rs")),
        ("fences", include_str!("fences.rs")),
        ("windows", include_str!("windows.rs")),
        ("compose", include_str!("compose.rs")),
        ("channels", include_str!("channels.rs")),
        ("https", include_str!("https.rs")),
    ]
}

/// Every five-digit number from 20000 to 29999 in `src`.
fn numbers(src: &str) -> Vec<u32> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            let j = (i..b.len())
                .find(|&j| !b[j].is_ascii_digit())
                .unwrap_or(b.len());
            if j - i == 5
                && let Ok(n) = src[i..j].parse::<u32>()
                && (20000..30000).contains(&n)
            {
                out.push(n);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn every_module_takes_its_ports_from_its_own_block() {
    for (i, a) in BLOCKS.iter().enumerate() {
        for b in &BLOCKS[i + 1..] {
            assert!(a.2 < b.1 || b.2 < a.1, "{a:?} overlaps {b:?}");
        }
    }
    for (module, src) in sources() {
        let (_, first, last) = BLOCKS
            .iter()
            .find(|b| b.0 == module)
            .copied()
            .unwrap_or_else(|| panic!("{module} has no block"));
        for n in numbers(src) {
            if NOT_PORTS.contains(&(module, n)) {
                continue;
            }
            assert!(
                (u32::from(first)..=u32::from(last)).contains(&n),
                "{module} uses port {n}, outside its block {first}-{last}"
            );
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/it_ports.rs"));
