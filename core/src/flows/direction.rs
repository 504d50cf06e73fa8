//! Who is the client of a flow when no SYN says so (table.py `client_side_by_ports`,
//! `client_side_by_content`, `SERVICE_PORTS`, `EPHEMERAL_MIN`), and the ICMP "ports"
//! (community_id.py `icmp_port_equivalents`).

/// Ports >= 1024 that are services, not ephemeral ports, for the direction rule (table.py `SERVICE_PORTS`).
pub const SERVICE_PORTS: [u16; 14] = [
    1080, 1194, 1723, 3128, 3478, 4500, 5223, 5228, 5349, 5353, 5355, 8080, 8443, 8883,
];

/// Lowest port of the common ephemeral ranges (Linux 32768-60999, IANA 49152-65535).
pub const EPHEMERAL_MIN: u16 = 32768;

const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"CONNECT ",
    b"OPTIONS ",
    b"DELETE ",
    b"PATCH ",
    b"TRACE ",
];

fn is_service(port: u16) -> bool {
    port < 1024 || SERVICE_PORTS.contains(&port)
}

/// 0 if the packet's source is the client by the port rule, 1 if its destination is
/// (table.py `client_side_by_ports`).
pub fn client_side_by_ports(sport: u16, dport: u16) -> usize {
    let s_service = is_service(sport);
    let d_service = is_service(dport);
    if d_service && !s_service {
        return 0;
    }
    if s_service && !d_service {
        return 1;
    }
    if !s_service && !d_service {
        // Two unregistered ports: the one in the ephemeral range against one below it is
        // the client's. Two ephemeral-looking ports say nothing.
        let s_eph = sport >= EPHEMERAL_MIN;
        let d_eph = dport >= EPHEMERAL_MIN;
        if s_eph != d_eph {
            return if s_eph { 0 } else { 1 };
        }
    }
    0
}

/// 0 if this payload is what a client sends first, 1 if a server's, None if unknown
/// (table.py `client_side_by_content`).
pub fn client_side_by_content(payload: &[u8]) -> Option<usize> {
    if payload.len() >= 6 && payload[0] == 0x16 && payload[1] == 0x03 {
        return match payload[5] {
            0x01 => Some(0), // TLS ClientHello
            0x02 => Some(1), // TLS ServerHello
            _ => None,
        };
    }
    if payload.starts_with(b"HTTP/1.") {
        return Some(1);
    }
    if HTTP_METHODS.iter().any(|m| payload.starts_with(m)) {
        return Some(0);
    }
    None
}

/// ICMPv4 type -> counterpart type (community_id.py `_ICMP4_PAIRS`).
fn icmp4_counterpart(t: u8) -> Option<u8> {
    match t {
        8 => Some(0),
        0 => Some(8),
        13 => Some(14),
        14 => Some(13),
        15 => Some(16),
        16 => Some(15),
        10 => Some(9),
        17 => Some(18),
        18 => Some(17),
        _ => None,
    }
}

/// ICMPv6 type -> counterpart type (community_id.py `_ICMP6_PAIRS`).
fn icmp6_counterpart(t: u8) -> Option<u8> {
    match t {
        128 => Some(129),
        129 => Some(128),
        133 => Some(134),
        134 => Some(133),
        135 => Some(136),
        136 => Some(135),
        130 => Some(131),
        131 => Some(130),
        139 => Some(140),
        140 => Some(139),
        144 => Some(145),
        145 => Some(144),
        _ => None,
    }
}

/// (source "port", destination "port", one-way) for an ICMP/ICMPv6 message
/// (community_id.py `icmp_port_equivalents`).
pub fn icmp_port_equivalents(proto: u8, icmp_type: u8, icmp_code: u8) -> (u16, u16, bool) {
    let other = if proto == 58 {
        icmp6_counterpart(icmp_type)
    } else {
        icmp4_counterpart(icmp_type)
    };
    match other {
        None => (icmp_type as u16, icmp_code as u16, true),
        Some(o) => (icmp_type as u16, o as u16, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(client_side_by_ports(50000, 443), 0);
        assert_eq!(client_side_by_ports(443, 50000), 1);
        assert_eq!(client_side_by_ports(5353, 5353), 0);
        assert_eq!(client_side_by_ports(2000, 40000), 1);
        assert_eq!(client_side_by_ports(40000, 2000), 0);
        assert_eq!(client_side_by_ports(40000, 50000), 0);
        assert_eq!(client_side_by_ports(8443, 1500), 1);
    }

    #[test]
    fn content() {
        assert_eq!(client_side_by_content(b"\x16\x03\x01\x00\x05\x01"), Some(0));
        assert_eq!(client_side_by_content(b"\x16\x03\x03\x00\x05\x02"), Some(1));
        assert_eq!(client_side_by_content(b"\x16\x03\x03\x00\x05\x0b"), None);
        assert_eq!(client_side_by_content(b"\x16\x03\x03"), None);
        assert_eq!(client_side_by_content(b"HTTP/1.1 200 OK"), Some(1));
        assert_eq!(client_side_by_content(b"CONNECT x:443"), Some(0));
        assert_eq!(client_side_by_content(b"GET"), None);
    }

    #[test]
    fn icmp() {
        assert_eq!(icmp_port_equivalents(1, 8, 0), (8, 0, false));
        assert_eq!(icmp_port_equivalents(1, 3, 3), (3, 3, true));
        assert_eq!(icmp_port_equivalents(58, 135, 0), (135, 136, false));
        assert_eq!(icmp_port_equivalents(58, 1, 4), (1, 4, true));
    }
}
