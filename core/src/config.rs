//! Every limit of the core, field for field `analyzer/flows/config.py` FlowConfig.
//! `#[repr(C)]`: Python fills it through the C ABI (`analyzer/native`), so the values the
//! Python engine would use are the values the core uses.

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowConfig {
    pub reassembly_cap: u64,
    pub reassembly_budget: u64,
    pub reassembly_floor: u64,
    pub max_segments: u64,
    pub max_pending_segments: u64,
    pub max_udp_datagrams: u64,
    pub tcp_idle_timeout: f64,
    pub udp_idle_timeout: f64,
    pub icmp_idle_timeout: f64,
    pub tcp_attempt_timeout: f64,
    pub tcp_close_linger: f64,
    pub tcp_partial_close_timeout: f64,
    pub max_flows: u64,
    pub max_time_jump: f64,
    pub ip_id_samples: u64,
    pub max_rsts: u64,
    pub max_icmp_errors: u64,
    pub max_history: u64,
    pub max_processes: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            reassembly_cap: 256 * 1024,
            reassembly_budget: 64 * 1024 * 1024,
            reassembly_floor: 32 * 1024,
            max_segments: 4096,
            max_pending_segments: 256,
            max_udp_datagrams: 16,
            tcp_idle_timeout: 300.0,
            udp_idle_timeout: 60.0,
            icmp_idle_timeout: 60.0,
            tcp_attempt_timeout: 5.0,
            tcp_close_linger: 5.0,
            tcp_partial_close_timeout: 3.0,
            max_flows: 100_000,
            max_time_jump: 60.0,
            ip_id_samples: 8,
            max_rsts: 32,
            max_icmp_errors: 16,
            max_history: 256,
            max_processes: 8,
        }
    }
}
