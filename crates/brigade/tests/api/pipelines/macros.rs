//! Macros: `{% macro %}` definitions in `macros/*.sql` are callable from every model without
//! an import; a broken macro file is reported with its file and line.

use super::support::*;
use crate::helpers::write_file;

const SHOP: &str = r#"
retries = 0

[[extract]]
name = "raw_orders"
from = "file"
path = "data/orders.csv"

[[model]]
name = "orders"
sql = "models/orders.sql"

[[model]]
name = "totals"
layer = "gold"
query = "SELECT {{ cents('sum(amount_cents)') }} AS total FROM {{ ref('orders') }}"
"#;

const ORDERS_SQL: &str = "-- amounts in the source are in cents
SELECT id, amount_cents, {{ cents('amount_cents') }} AS amount
FROM {{ source_orders() }}";

const MONEY: &str = "{# helpers shared by every model #}
{% macro cents(column) -%}
  ROUND(({{ column }}) / 100.0, 2)
{%- endmacro %}
";

const SOURCES: &str = "{% macro source_orders() %}{{ ref('raw_orders') }}{% endmacro %}\n";

fn shop() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        text("pipelines/shop.toml", SHOP),
        text("models/orders.sql", ORDERS_SQL),
        text("macros/money.sql", MONEY),
        text("macros/sources.sql", SOURCES),
        text("data/orders.csv", "id,amount_cents\n1,1050\n2,249\n"),
    ]
}

files_test!(a_macro_serves_two_models, shop(), |app| async move {
    let run = run_pipeline(&app, "shop", no_options()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // The ref inside a macro makes raw_orders a dependency of orders.
    assert_eq!(
        step_statuses(&run),
        [
            "raw_orders:succeeded",
            "orders:succeeded",
            "totals:succeeded"
        ]
    );
    let rows = query(&app, "SELECT id, amount FROM orders ORDER BY id").await;
    assert_eq!(rows[0]["amount"], 10.5, "{rows:?}");
    assert_eq!(rows[1]["amount"], 2.49, "{rows:?}");
    let total = query(&app, "SELECT total FROM totals").await;
    assert_eq!(total[0]["total"], 12.99, "{total:?}");

    // A syntax error in a macro file: the pipeline is refused, naming the file and line.
    write_file(
        app.dir.path(),
        "macros/money.sql",
        b"{% macro cents(column) %}\nROUND({{ column / }}, 2)\n{% endmacro %}\n",
    );
    let out = pipeline_cli(app.dir.path(), &app.db_url, &["run", "shop"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("macros/money.sql:2:"),
        "{}",
        output_text(&out)
    );
    assert!(stderr.contains("syntax error"), "{}", output_text(&out));
    let res = app
        .post("/api/pipelines/shop/runs", serde_json::json!({}))
        .await;
    let (status, body) = crate::helpers::status_and_text(res).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("macros/money.sql:2"), "{body}");
    assert_eq!(
        query(&app, "SELECT total FROM totals").await[0]["total"],
        12.99,
        "nothing ran"
    );
});
