//! Tests of settings loading: defaults, provenance of errors, env overrides, parsers.
use super::*;

fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SETTINGS_FILE), toml).unwrap();
    let vars = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Settings::load_from(dir.path(), vars)
}

#[test]
fn defaults_are_sqlite_on_8090() {
    let s = load("", &[]).unwrap();
    assert_eq!(s.server.addr.to_string(), "127.0.0.1:8090");
    assert!(matches!(s.database.url, DatabaseUrl::Sqlite(ref p) if p.ends_with("data/brigade.db")));
    assert_eq!(s.server.body_limit, 1024 * 1024);
    assert_eq!(s.auth.access_token_ttl, Duration::from_secs(900));
}

#[test]
fn bad_addr_in_file_names_file_and_key() {
    let e = load("[server]\naddr = \"not an address\"\n", &[]).unwrap_err();
    assert_eq!(e.key, "server.addr");
    assert!(e.origin.ends_with("brigade.toml"), "{e}");
}

#[test]
fn unknown_key_is_rejected_with_its_name() {
    let e = load("[server]\nadr = \"127.0.0.1:1\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("adr"), "{e}");
}

#[test]
fn toml_syntax_error_names_the_file() {
    let e = load("[server\n", &[]).unwrap_err();
    assert!(e.to_string().contains("brigade.toml"), "{e}");
}

#[test]
fn env_overrides_the_file_and_is_named_in_errors() {
    let s = load(
        "[server]\naddr = \"127.0.0.1:1\"\n",
        &[("BRIGADE_SERVER_ADDR", "0.0.0.0:9")],
    )
    .unwrap();
    assert_eq!(s.server.addr.to_string(), "0.0.0.0:9");
    let s = load("", &[("BRIGADE_AUTH_ALLOW_REGISTRATION", "true")]).unwrap();
    assert!(s.auth.allow_registration);
    let e = load("", &[("BRIGADE_SERVER_ADDR", "nope")]).unwrap_err();
    assert_eq!(e.origin, "BRIGADE_SERVER_ADDR");
    assert_eq!(e.key, "server.addr");
    let e = load("", &[("BRIGADE_DATABASE_URL", "mysql://x")]).unwrap_err();
    assert_eq!(e.origin, "BRIGADE_DATABASE_URL");
}

#[test]
fn env_key_mapping() {
    assert_eq!(map_env_key("SERVER_ADDR").as_deref(), Some("server.addr"));
    assert_eq!(
        map_env_key("RATE_LIMIT_DEFAULT").as_deref(),
        Some("rate_limit.default")
    );
    assert_eq!(
        map_env_key("AUTH_ALLOW_REGISTRATION").as_deref(),
        Some("auth.allow_registration")
    );
    assert_eq!(map_env_key("JWT_SECRET"), None);
    assert_eq!(map_env_key("LOG"), None);
}

#[test]
fn rates() {
    assert_eq!(
        parse_rate("600/min").unwrap(),
        Some(Rate {
            count: 600,
            period: Duration::from_secs(60)
        })
    );
    assert_eq!(parse_rate("off").unwrap(), None);
    assert!(parse_rate("many").is_err());
    assert!(parse_rate("5/fortnight").is_err());
    let e = load("[rate_limit]\nauth = \"lots\"\n", &[]).unwrap_err();
    assert_eq!(e.key, "rate_limit.auth");
    let s = load("", &[("BRIGADE_RATE_LIMIT_DEFAULT", "off")]).unwrap();
    assert!(s.rate_limit.default.is_none());
    assert_eq!(s.rate_limit.auth.map(|r| r.count), Some(10));
}

#[test]
fn pipelines_stale_after_from_file_and_environment() {
    let s = load("", &[]).unwrap();
    assert_eq!(s.pipelines.stale_after, Duration::from_secs(30));
    let s = load("[pipelines]\nstale_after = \"2m\"\n", &[]).unwrap();
    assert_eq!(s.pipelines.stale_after, Duration::from_secs(120));
    let s = load("", &[("BRIGADE_PIPELINES_STALE_AFTER", "5s")]).unwrap();
    assert_eq!(s.pipelines.stale_after, Duration::from_secs(5));
    let e = load("[pipelines]\nstale_after = \"soon\"\n", &[]).unwrap_err();
    assert_eq!(e.key, "pipelines.stale_after");
    let e = load("", &[("BRIGADE_PIPELINES_STALE_AFTER", "100ms")]).unwrap_err();
    assert_eq!(e.origin, "BRIGADE_PIPELINES_STALE_AFTER");
}

#[test]
fn durations_and_sizes() {
    assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert!(parse_duration("soon").is_err());
    assert_eq!(parse_bytes(&FigValue::from("1MiB")).unwrap(), 1 << 20);
    assert!(parse_bytes(&FigValue::from("lots")).is_err());
}

#[test]
fn oidc_providers_are_typed_and_validated() {
    let s = load(
        "[auth.oidc.example]\nissuer = \"https://id.example.com/\"\nclient_id = \"brigade\"\n\
         client_secret_env = \"EX_SECRET\"\n\
         [auth.oidc.local]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"c\"\n\
         scopes = [\"openid\"]\nredirect_url = \"http://app.test/cb\"\n",
        &[("EX_SECRET", "s3cret")],
    )
    .unwrap();
    let [example, local] = &s.auth.oidc[..] else {
        panic!("{:?}", s.auth.oidc)
    };
    assert_eq!(example.name, "example");
    assert_eq!(example.issuer, "https://id.example.com");
    assert_eq!(
        example.client_secret.as_ref().map(Redacted::expose),
        Some("s3cret")
    );
    assert_eq!(example.scopes, ["openid", "email", "profile"]);
    assert!(!format!("{example:?}").contains("s3cret"));
    assert_eq!(local.client_secret, None);
    assert_eq!(local.redirect_url.as_deref(), Some("http://app.test/cb"));
    assert!(load("", &[]).unwrap().auth.oidc.is_empty());
}

#[test]
fn oidc_errors_name_the_key() {
    let key_of = |toml: &str| load(toml, &[]).unwrap_err().key;
    let base = "[auth.oidc.ex]\nclient_id = \"c\"\n";
    assert_eq!(key_of(base), "auth.oidc.ex.issuer");
    assert_eq!(
        key_of(&format!("{base}issuer = \"ftp://x\"\n")),
        "auth.oidc.ex.issuer"
    );
    let ok = "[auth.oidc.ex]\nissuer = \"https://x.test\"\n";
    assert_eq!(key_of(ok), "auth.oidc.ex.client_id");
    let ok = format!("{ok}client_id = \"c\"\n");
    assert_eq!(
        key_of(&format!("{ok}client_secret_env = \"NOT_SET_ANYWHERE\"\n")),
        "auth.oidc.ex.client_secret_env"
    );
    assert_eq!(
        key_of(&format!("{ok}scopes = [\"email\"]\n")),
        "auth.oidc.ex.scopes"
    );
    assert_eq!(
        key_of(&format!("{ok}redirect_url = \"/cb\"\n")),
        "auth.oidc.ex.redirect_url"
    );
    assert!(key_of(&format!("{ok}secret = \"x\"\n")).contains("secret"));
    assert_eq!(
        key_of("[auth.oidc.\"Bad Name\"]\nissuer = \"https://x.test\"\nclient_id = \"c\"\n"),
        "auth.oidc.Bad Name"
    );
}

#[test]
fn relative_sqlite_path_is_under_the_app_dir() {
    let dir = Path::new("/app");
    assert_eq!(
        parse_database_url(dir, "sqlite://db/x.db").unwrap(),
        DatabaseUrl::Sqlite(PathBuf::from("/app/db/x.db"))
    );
    assert!(parse_database_url(dir, "mysql://x").is_err());
}

#[test]
fn search_indexes_and_llm_are_validated_with_their_keys() {
    let s = load(
        "[[search.indexes]]\nname = \"docs\"\npath = \"docs/**/*.md\"\nchunk = { max_tokens = 200, overlap = 20 }\n\
         [[search.indexes]]\nname = \"notes\"\ncollection = \"notes\"\nfields = [\"title\", \"body\"]\n\
         embedder = \"local:models/minilm\"\n\
         [llm]\nbase_url = \"http://127.0.0.1:11434/v1/\"\nmodel = \"llama3.1\"\napi_key_env = \"MY_KEY\"\n",
        &[("MY_KEY", "sk-secret")],
    )
    .unwrap();
    assert_eq!(s.search.indexes.len(), 2);
    assert_eq!(
        s.search.indexes[0].source,
        IndexSource::Path("docs/**/*.md".into())
    );
    assert_eq!(
        (s.search.indexes[0].max_tokens, s.search.indexes[0].overlap),
        (200, 20)
    );
    assert_eq!(s.search.indexes[1].embedder, "local:models/minilm");
    // Hybrid leans on a real model's vectors; builtin's are weighed like keywords.
    assert_eq!(s.search.indexes[0].vector_weight, 0.5);
    assert!((s.search.indexes[1].vector_weight - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(s.search.indexes[0].same_document_weight, 0.6);
    let e = load(
        "[[search.indexes]]\nname = \"d\"\nsame_document_weight = 2\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.key, "search.indexes[0].same_document_weight", "{e}");
    for bad in ["../x/*.md", "docs/[a.md", "docs/***/x"] {
        let e = load(
            &format!("[[search.indexes]]\nname = \"d\"\npath = \"{bad}\"\n"),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "search.indexes[0].path", "{bad}: {e}");
    }
    // Rules are checked when the settings load, not on the first search.
    let e = load(
        "[[search.indexes]]\nname = \"d\"\npath = \"x/*.md\"\nrule = \"@request.auth.id !=\"\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.key, "search.indexes[0].rule", "{e}");
    let e = load(
        "[[search.indexes]]\nname = \"d\"\ncollection = \"posts\"\nfields = [\"t\"]\nrule = \"\"\n\
         [[search.indexes]]\nname = \"e\"\ncollection = \"posts\"\nfields = [\"t\"]\nrule = \"id != ''\"\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.key, "search.indexes[1].rule", "{e}");
    for (value, expected) in [
        ("1", Some(1.0)),
        ("0.8", Some(0.8)),
        ("1.5", None),
        ("-0.1", None),
    ] {
        let got = load(
            &format!("[[search.indexes]]\nname = \"d\"\nvector_weight = {value}\n"),
            &[],
        );
        match expected {
            Some(w) => assert_eq!(got.unwrap().search.indexes[0].vector_weight, w),
            None => assert_eq!(got.unwrap_err().key, "search.indexes[0].vector_weight"),
        }
    }
    let llm = s.llm.unwrap();
    assert_eq!(llm.base_url, "http://127.0.0.1:11434/v1");
    assert_eq!(llm.api_key().unwrap().unwrap().expose(), "sk-secret");
    assert_eq!(llm.timeout, Duration::from_secs(30));

    let e = load(
        "[[search.indexes]]\nname = \"docs\"\nembedder = \"bert\"\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.key, "search.indexes[0].embedder", "{e}");
    let e = load("[[search.indexes]]\nname = \"Docs!\"\n", &[]).unwrap_err();
    assert_eq!(e.key, "search.indexes[0].name", "{e}");
    let e = load(
        "[[search.indexes]]\nname = \"d\"\npath = \"x/*.md\"\nchunk = { max_tokens = 100, overlap = 60 }\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.key, "search.indexes[0].chunk.overlap", "{e}");
    let e = load(
        "[[search.indexes]]\nname = \"d\"\ncollection = \"posts\"\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.key, "search.indexes[0].fields", "{e}");
    let e = load("[[search.indexes]]\nname = \"d\"\npaths = \"x\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("paths"), "{e}");
    // An unset key variable does not stop commands that never call the model; asking for
    // the key names the variable.
    let s = load(
        "[llm]\nbase_url = \"http://x/v1\"\nmodel = \"m\"\napi_key_env = \"NOPE\"\n",
        &[],
    )
    .unwrap();
    let e = s.llm.unwrap().api_key().unwrap_err();
    assert!(e.contains("llm.api_key_env") && e.contains("NOPE"), "{e}");
    let e = load("[llm]\nmodel = \"m\"\n", &[]).unwrap_err();
    assert_eq!(e.key, "llm.base_url", "{e}");
}

#[test]
fn login_lockout_trusted_proxies_and_metrics() {
    let s = load("", &[]).unwrap();
    let login = s.rate_limit.login.unwrap();
    assert_eq!(login.failures, 5);
    assert_eq!(login.lockout, Duration::from_secs(60));
    assert_eq!(login.lockout_max, Duration::from_secs(3600));
    assert!(s.server.trusted_proxies.is_empty());
    assert!(s.metrics.token.is_none() && s.metrics.listen.is_none());

    let toml = "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n\
                [rate_limit]\nlogin_failures = \"off\"\n\
                [metrics]\nlisten = \"127.0.0.1:9090\"\n";
    let s = load(toml, &[("BRIGADE_METRICS_TOKEN", "0000111122223333")]).unwrap();
    assert_eq!(s.server.trusted_proxies.len(), 2);
    assert!(s.rate_limit.login.is_none());
    assert_eq!(s.metrics.token.unwrap().expose(), "0000111122223333");
    assert_eq!(s.metrics.listen.unwrap().port(), 9090);
    let s = load(
        "",
        &[(
            "BRIGADE_SERVER_TRUSTED_PROXIES",
            "10.0.0.0/8, 192.168.0.0/16",
        )],
    );
    assert_eq!(s.unwrap().server.trusted_proxies.len(), 2);

    for (toml, key) in [
        (
            "[server]\ntrusted_proxies = [\"10.0.0.1/8\"]\n",
            "server.trusted_proxies",
        ),
        (
            "[rate_limit]\nlogin_failures = \"many\"\n",
            "rate_limit.login_failures",
        ),
        (
            "[rate_limit]\nlogin_lockout = \"2h\"\n",
            "rate_limit.login_lockout_max",
        ),
        ("[metrics]\ntoken = \"short\"\n", "metrics.token"),
        ("[metrics]\nlisten = \"nowhere\"\n", "metrics.listen"),
    ] {
        assert_eq!(load(toml, &[]).unwrap_err().key, key, "{toml}");
    }
}

#[test]
fn login_failures_from_file_and_environment() {
    let s = load("[rate_limit]\nlogin_failures = 3\n", &[]).unwrap();
    assert_eq!(s.rate_limit.login.unwrap().failures, 3);
    let s = load("", &[("BRIGADE_RATE_LIMIT_LOGIN_FAILURES", "7")]).unwrap();
    assert_eq!(s.rate_limit.login.unwrap().failures, 7);
    let s = load("", &[("BRIGADE_RATE_LIMIT_LOGIN_FAILURES", "off")]).unwrap();
    assert!(s.rate_limit.login.is_none());
    let e = load("[rate_limit]\nlogin_failures = -1\n", &[]).unwrap_err();
    assert_eq!(e.key, "rate_limit.login_failures");
}

#[test]
fn errors_name_the_key_once_and_quote_once() {
    let e = load("[llm]\nprovider = \"openai\"\n", &[]).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("key `llm.provider`: unknown key `provider`; the keys here are `base_url`"),
        "{text}"
    );
    assert!(!text.contains("``"), "{text}");
    let e = load("[server\n", &[]).unwrap_err();
    let text = e.to_string();
    assert!(!text.contains("key `"), "{text}");
    assert!(text.contains("line 1"), "{text}");
}

#[test]
fn endpoints_are_refused_until_they_are_served() {
    let e = load("[endpoints]\nx = 1\n", &[]).unwrap_err();
    assert_eq!(e.key, "endpoints", "{e}");
    assert!(e.message.contains("remove"), "{e}");
}
