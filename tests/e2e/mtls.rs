//! Callers identified by TLS client certificates (mTLS), over HTTP/2 and HTTP/3.

use gateway::callers::sha256_hex;
use gateway_core::{Color, Sub};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::support::client::{Client, Protocol};
use crate::support::{Gateway, Options};

#[tokio::test]
async fn a_client_certificate_names_its_caller() {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let client_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["gate-7".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = params.signed_by(&client_key, &issuer).unwrap();
    let fingerprint = sha256_hex(client_cert.der());
    let ca_pem = ca_cert.pem();
    let gw = Gateway::start(Options {
        prepare: Some(Box::new(move |setup| {
            std::fs::write(setup.dir.join("clients-ca.pem"), ca_pem).unwrap();
            let callers = serde_json::json!({"callers": [
                {"name": "gate-7", "client_cert_sha256": fingerprint, "venues": ["bus"], "rate_per_s": 1000},
            ]});
            std::fs::write(setup.callers(), callers.to_string()).unwrap();
        })),
        args: vec!["--client-ca".into(), "{state}/clients-ca.pem".into()],
        ..Options::default()
    })
    .await;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der()));
    let identity = (vec![CertificateDer::from(client_cert.der().to_vec())], key);
    let code = gw.mint(Sub([13; 16]), Color::Green, 1);
    for proto in [Protocol::H2, Protocol::H3] {
        let mut c = Client::connect_as(proto, gw.listen, &gw.ca, Some(&identity)).await;
        let body = |venue: &str| serde_json::json!({"code": code, "venue": venue}).to_string();
        // No Authorization header: the certificate is the credential.
        let a = c
            .send(http::Method::POST, "/v1/verify", &[], body("bus"))
            .await;
        assert_eq!(
            (a.status.as_u16(), a.json()["decision"].as_str()),
            (200, Some("allow")),
            "{proto:?}"
        );
        let a = c
            .send(http::Method::POST, "/v1/verify", &[], body("school"))
            .await;
        assert_eq!(
            a.status, 403,
            "{proto:?}: the certificate's caller is scoped to bus"
        );
        // Without the certificate: unauthorized.
        let mut anon = Client::connect(proto, gw.listen, &gw.ca).await;
        let a = anon
            .send(http::Method::POST, "/v1/verify", &[], body("bus"))
            .await;
        assert_eq!(a.status, 401, "{proto:?}");
    }
}
