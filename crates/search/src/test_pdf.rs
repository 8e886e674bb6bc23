//! Hand-built PDFs for tests: the PDF reader's unit tests and the API tests that post one.

/// A minimal valid PDF (Helvetica, one content stream per page, a correct xref table):
/// each page is paragraphs of lines, paragraphs 30 pt apart, lines 14 pt apart.
pub fn make_pdf(title: Option<&str>, pages: &[&[&[&str]]]) -> Vec<u8> {
    let font = 3 + 2 * pages.len();
    let info = font + 1;
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            (0..pages.len())
                .map(|i| format!("{} 0 R", 3 + 2 * i))
                .collect::<Vec<_>>()
                .join(" "),
            pages.len()
        ),
    ];
    for (i, paragraphs) in pages.iter().enumerate() {
        let mut content = String::from("BT /F1 12 Tf 72 720 Td");
        for (p, lines) in paragraphs.iter().enumerate() {
            for (l, line) in lines.iter().enumerate() {
                let dy = if l > 0 {
                    -14
                } else if p > 0 {
                    -30
                } else {
                    0
                };
                content.push_str(&format!(" 0 {dy} Td ({line}) Tj"));
            }
        }
        content.push_str(" ET");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
             /Resources << /Font << /F1 {font} 0 R >> >> /Contents {} 0 R >>",
            4 + 2 * i
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    objects.push(
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_string(),
    );
    objects.push(format!("<< /Title ({}) >>", title.unwrap_or("")));
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    let info = if title.is_some() {
        format!(" /Info {info} 0 R")
    } else {
        String::new()
    };
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}
