"""Who may have what: request signing, grants and consents, the release gate and the access log it leaves."""
