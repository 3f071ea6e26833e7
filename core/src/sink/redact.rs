//! URLs as messages and logs show them: the password of a URL's user information
//! (`https://user:password@host/`) replaced by `***`. The sinks' URLs may carry one (ureq
//! sends it as Basic authentication; AMQP logs in with it), and their messages reach
//! logs, `last_error` and the reasons kept with dead letters.

/// `url` with the password of its user information replaced by `***`; text without a
/// scheme shown as `not_a_url` when given (it may be anything, even a bare password), else
/// as it is.
pub(crate) fn password_hidden(url: &str, not_a_url: Option<&str>) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return not_a_url.unwrap_or(url).to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let user = &authority[..at];
    match user.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &user[..colon],
            &url[scheme_end + at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::password_hidden;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            ("https://u:p@h:8443/x", "https://u:***@h:8443/x"),
            ("http://u:p%40ss@h/v?a=b", "http://u:***@h/v?a=b"),
            ("http://u@h", "http://u@h"),
            ("http://h:80/a@b", "http://h:80/a@b"),
            ("http://u:p:q@h", "http://u:***@h"),
            ("http://a@b:c@h/x@y", "http://a@b:***@h/x@y"),
        ] {
            assert_eq!(password_hidden(url, None), shown, "{url}");
        }
        assert_eq!(
            password_hidden("secret", Some("(not a URL)")),
            "(not a URL)"
        );
        assert_eq!(password_hidden("host:80", None), "host:80");
    }
}
