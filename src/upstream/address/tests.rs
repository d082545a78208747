use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn link_local_and_metadata_addresses_are_always_refused() {
    let policy = AddressPolicy::default();
    for refused in [
        "169.254.169.254:80",
        "169.254.0.1:443",
        "[fe80::1]:80",
        "[fd00:ec2::254]:80",
        "[::ffff:169.254.169.254]:80",
    ] {
        assert!(policy.refusal(addr(refused)).is_some(), "{refused}");
    }
    for allowed in [
        "140.82.112.3:443",
        "[2606:50c0:8000::154]:443",
        "127.0.0.1:8080",
        "[::1]:80",
        "169.255.0.1:80",
        "[fd00:ec2::253]:80",
    ] {
        assert_eq!(policy.refusal(addr(allowed)), None, "{allowed}");
    }
}

#[test]
fn loopback_only_where_allowed() {
    let lambda = AddressPolicy {
        allow_loopback: false,
        runtime_api: None,
    };
    for refused in [
        "127.0.0.1:80",
        "127.1.2.3:80",
        "[::1]:80",
        "0.0.0.0:80",
        "[::]:80",
        "[::ffff:127.0.0.1]:80",
    ] {
        assert!(lambda.refusal(addr(refused)).is_some(), "{refused}");
    }
    assert_eq!(lambda.refusal(addr("10.0.0.1:80")), None);
}

#[test]
fn the_runtime_api_is_refused_even_with_loopback_allowed() {
    let policy = AddressPolicy {
        allow_loopback: true,
        runtime_api: runtime_api_address("127.0.0.1:9001"),
    };
    assert!(policy.refusal(addr("127.0.0.1:9001")).is_some());
    assert_eq!(policy.refusal(addr("127.0.0.1:9002")), None);
    assert_eq!(
        runtime_api_address("http://localhost:9000/.rt"),
        Some(addr("127.0.0.1:9000"))
    );
    assert_eq!(runtime_api_address("[::1]:9001"), Some(addr("[::1]:9001")));
    assert_eq!(runtime_api_address("runtime.internal:9001"), None);
    assert_eq!(runtime_api_address(""), None);
}
