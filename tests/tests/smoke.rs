use pam_mfa_tests::*;

#[test]
fn password_plus_code() {
    let env = Env::new();
    env.set_password("alice@example.org", "T9D3K!px");
    let secret = env.enroll("alice@example.org");
    let t = fresh_step(5);
    let code = oathtool(&secret, t);
    let r = env.login("mail", "alice@example.org", &format!("T9D3K!px{code}"));
    println!("{:?} {:?}", r, env.logs());
    assert!(r.ok());
}
