"""The seed's table rows, typed by hand from ../shared/seed/000_59330621222caff7.txt.

This is the test suite's own copy of the table, kept apart from signatures/catalogue/seed.toml so
the two can check each other. One tuple per table row:
(line of the host, section key, host, ports in the document's order, Protocol column, proxy).
Proxy: "Ja" -> "yes", empty cell -> "no", the *.push.apple.com row -> "apns_note".
"""

from __future__ import annotations

SeedRow = tuple[int, str, str, tuple[int, ...], str, str]

EXPECTED_SEED_ROWS: tuple[SeedRow, ...] = (
    # Configuratie van het apparaat
    (23, "device_setup", "albert.apple.com", (443,), "TCP", "yes"),
    (24, "device_setup", "captive.apple.com", (443, 80), "TCP", "yes"),
    (25, "device_setup", "gs.apple.com", (443,), "TCP", "yes"),
    (26, "device_setup", "humb.apple.com", (443,), "TCP", "yes"),
    (27, "device_setup", "static.ips.apple.com", (443, 80), "TCP", "yes"),
    (28, "device_setup", "sq-device.apple.com", (443,), "TCP", "no"),
    (29, "device_setup", "tbsc.apple.com", (443,), "TCP", "yes"),
    (30, "device_setup", "time-ios.apple.com", (123,), "UDP", "no"),
    (31, "device_setup", "time.apple.com", (123,), "UDP", "no"),
    (32, "device_setup", "time-macos.apple.com", (123,), "UDP", "no"),
    # Apparaatbeheer
    (39, "device_management", "*.push.apple.com", (443, 80, 5223, 2197), "TCP", "apns_note"),
    (40, "device_management", "deviceenrollment.apple.com", (443,), "TCP", "no"),
    (41, "device_management", "deviceservices-external.apple.com", (443,), "TCP", "no"),
    (42, "device_management", "gdmf.apple.com", (443,), "TCP", "yes"),
    (44, "device_management", "identity.apple.com", (443,), "TCP", "yes"),
    (45, "device_management", "iprofiles.apple.com", (443,), "TCP", "yes"),
    (46, "device_management", "mdmenrollment.apple.com", (443,), "TCP", "yes"),
    (47, "device_management", "setup.icloud.com", (443,), "TCP", "no"),
    (48, "device_management", "vpp.itunes.apple.com", (443,), "TCP", "yes"),
    # Apple School Manager en Apple Business Manager
    (55, "asm_abm", "*.business.apple.com", (443, 80), "TCP", "no"),
    (57, "asm_abm", "*.school.apple.com", (443, 80), "TCP", "no"),
    (58, "asm_abm", "upload.appleschoolcontent.com", (22,), "SSH", "yes"),
    (59, "asm_abm", "ws-ee-maidsvc.icloud.com", (443, 80), "TCP", "no"),
    # Apple Business Essentials-apparaatbeheer
    (66, "abe_device_management", "axm-adm-enroll.apple.com", (443,), "TCP", "no"),
    (67, "abe_device_management", "axm-adm-mdm.apple.com", (443,), "TCP", "no"),
    (68, "abe_device_management", "axm-adm-scep.apple.com", (443,), "TCP", "no"),
    (69, "abe_device_management", "axm-app.apple.com", (443,), "TCP", "no"),
    # Software-updates
    (80, "software_updates", "appldnld.apple.com", (80,), "TCP", "no"),
    (81, "software_updates", "configuration.apple.com", (443,), "TCP", "no"),
    (82, "software_updates", "gdmf.apple.com", (443,), "TCP", "no"),
    (83, "software_updates", "gg.apple.com", (443, 80), "TCP", "yes"),
    (84, "software_updates", "gnf-mdn.apple.com", (443,), "TCP", "yes"),
    (85, "software_updates", "gnf-mr.apple.com", (443,), "TCP", "yes"),
    (86, "software_updates", "gs.apple.com", (443, 80), "TCP", "yes"),
    (87, "software_updates", "ig.apple.com", (443,), "TCP", "yes"),
    (88, "software_updates", "mesu.apple.com", (443, 80), "TCP", "no"),
    (89, "software_updates", "ns.itunes.apple.com", (443,), "TCP", "yes"),
    (90, "software_updates", "oscdn.apple.com", (443, 80), "TCP", "no"),
    (91, "software_updates", "osrecovery.apple.com", (443, 80), "TCP", "no"),
    (92, "software_updates", "skl.apple.com", (443,), "TCP", "no"),
    (93, "software_updates", "swcdn.apple.com", (80,), "TCP", "no"),
    (94, "software_updates", "swdist.apple.com", (443,), "TCP", "no"),
    (95, "software_updates", "swdownload.apple.com", (443, 80), "TCP", "yes"),
    (96, "software_updates", "swscan.apple.com", (443,), "TCP", "no"),
    (97, "software_updates", "updates-http.cdn-apple.com", (80,), "TCP", "no"),
    (98, "software_updates", "updates.cdn-apple.com", (443,), "TCP", "no"),
    (99, "software_updates", "xp.apple.com", (443,), "TCP", "yes"),
    # App Store
    (106, "app_store", "*.itunes.apple.com", (443, 80), "TCP", "yes"),
    (107, "app_store", "*.apps.apple.com", (443,), "TCP", "yes"),
    (108, "app_store", "*.mzstatic.com", (443,), "TCP", "no"),
    (109, "app_store", "itunes.apple.com", (443, 80), "TCP", "yes"),
    (110, "app_store", "ppq.apple.com", (443,), "TCP", "no"),
    # Updates van aanbieders
    (117, "carrier_updates", "appldnld.apple.com", (80,), "TCP", "no"),
    (118, "carrier_updates", "appldnld.apple.com.edgesuite.net", (80,), "TCP", "no"),
    (119, "carrier_updates", "itunes.com", (80,), "TCP", "no"),
    (120, "carrier_updates", "itunes.apple.com", (443,), "TCP", "no"),
    (121, "carrier_updates", "updates-http.cdn-apple.com", (80,), "TCP", "no"),
    (122, "carrier_updates", "updates.cdn-apple.com", (443,), "TCP", "no"),
    # Materiaalcaching (server)
    (131, "content_caching_server", "lcdn-registration.apple.com", (443,), "TCP", "yes"),
    (132, "content_caching_server", "suconfig.apple.com", (80,), "TCP", "no"),
    (135, "content_caching_server", "xp-cdn.apple.com", (443,), "TCP", "yes"),
    # Materiaalcaching (clients)
    (140, "content_caching_client", "lcdn-locator.apple.com", (443,), "TCP", "no"),
    (141, "content_caching_client", "serverstatus.apple.com", (443,), "TCP", "no"),
    # App-notarisatie
    (153, "app_notarization", "17.248.128.0/18", (443,), "TCP", "no"),
    (154, "app_notarization", "17.250.64.0/18", (443,), "TCP", "no"),
    (155, "app_notarization", "17.248.192.0/19", (443,), "TCP", "no"),
    # App-validatie
    (160, "app_validation", "*.appattest.apple.com", (443,), "TCP", "no"),
    # Feedbackassistent
    (167, "feedback_assistant", "bpapi.apple.com", (443,), "TCP", "yes"),
    (168, "feedback_assistant", "cssubmissions.apple.com", (443,), "TCP", "yes"),
    (172, "feedback_assistant", "fba.apple.com", (443,), "TCP", "yes"),
    # Apple Diagnose
    (185, "apple_diagnostics", "diagassets.apple.com", (443,), "TCP", "yes"),
    # Domain Name System-omzetting
    (192, "dns_resolution", "doh.dns.apple.com", (443,), "TCP", "yes"),
    # Validatie van certificaten
    (199, "certificate_validation", "certs.apple.com", (80, 443), "TCP", "no"),
    (200, "certificate_validation", "crl.apple.com", (80,), "TCP", "no"),
    (201, "certificate_validation", "crl.entrust.net", (80,), "TCP", "no"),
    (202, "certificate_validation", "crl3.digicert.com", (80,), "TCP", "no"),
    (203, "certificate_validation", "crl4.digicert.com", (80,), "TCP", "no"),
    (204, "certificate_validation", "ocsp.apple.com", (80,), "TCP", "no"),
    (205, "certificate_validation", "ocsp.digicert.cn", (80,), "TCP", "no"),
    (206, "certificate_validation", "ocsp.digicert.com", (80,), "TCP", "no"),
    (207, "certificate_validation", "ocsp.entrust.net", (80,), "TCP", "no"),
    (208, "certificate_validation", "ocsp2.apple.com", (443,), "TCP", "no"),
    (209, "certificate_validation", "valid.apple.com", (443,), "TCP", "yes"),
    # Apple ID
    (218, "apple_id", "appleid.apple.com", (443,), "TCP", "yes"),
    (222, "apple_id", "appleid.cdn-apple.com", (443,), "TCP", "yes"),
    (226, "apple_id", "idmsa.apple.com", (443,), "TCP", "yes"),
    (227, "apple_id", "gsa.apple.com", (443,), "TCP", "yes"),
    # iCloud
    (234, "icloud", "*.apple-cloudkit.com", (443,), "TCP", "no"),
    (235, "icloud", "*.apple-livephotoskit.com", (443,), "TCP", "no"),
    (236, "icloud", "*.apzones.com", (443,), "TCP", "no"),
    (237, "icloud", "*.cdn-apple.com", (443,), "TCP", "no"),
    (238, "icloud", "*.gc.apple.com", (443,), "TCP", "no"),
    (241, "icloud", "*.icloud.com", (443,), "TCP", "no"),
    (242, "icloud", "*.icloud.com.cn", (443,), "TCP", "no"),
    (245, "icloud", "*.icloud.apple.com", (443,), "TCP", "no"),
    (246, "icloud", "*.icloud-content.com", (443,), "TCP", "no"),
    (247, "icloud", "*.iwork.apple.com", (443,), "TCP", "no"),
    (248, "icloud", "mask.icloud.com", (443,), "UDP", "no"),
    (249, "icloud", "mask-h2.icloud.com", (443,), "TCP", "no"),
    (250, "icloud", "mask-api.icloud.com", (443,), "TCP", "yes"),
    # Aanvullend materiaal
    (259, "additional_content", "audiocontentdownload.apple.com", (80, 443), "TCP", "no"),
    (260, "additional_content", "devimages-cdn.apple.com", (80, 443), "TCP", "no"),
    (262, "additional_content", "download.developer.apple.com", (80, 443), "TCP", "no"),
    (263, "additional_content", "playgrounds-assets-cdn.apple.com", (443,), "TCP", "no"),
    (264, "additional_content", "playgrounds-cdn.apple.com", (443,), "TCP", "no"),
    (265, "additional_content", "sylvan.apple.com", (80, 443), "TCP", "no"),
)

# Hosts the current English edition no longer lists (research/apple-hosts.md section (a)).
REMOVED_IN_CURRENT: frozenset[tuple[str, str]] = frozenset({
    ("software_updates", "gnf-mdn.apple.com"),
    ("software_updates", "gnf-mr.apple.com"),
    ("software_updates", "ns.itunes.apple.com"),
    ("certificate_validation", "crl.entrust.net"),
    ("certificate_validation", "ocsp.entrust.net"),
    ("apple_id", "appleid.apple.com"),
})

# Section headings of the seed, in document order, exactly as written.
SEED_HEADINGS: tuple[str, ...] = (
    "Apple producten op bedrijfsnetwerken gebruiken",
    "Apple Push Notifications",
    "Configuratie van het apparaat",
    "Apparaatbeheer",
    "Apple School Manager en Apple Business Manager",
    "Apple Business Essentials-apparaatbeheer",
    "Software-updates",
    "macOS, iOS, iPadOS, watchOS en tvOS",
    "App Store",
    "Updates van aanbieders",
    "Materiaalcaching",
    "Apple Developer",
    "App-notarisatie",
    "App-validatie",
    "Feedbackassistent",
    "Apple Diagnose",
    "Domain Name System-omzetting",
    "Validatie van certificaten",
    "Apple ID",
    "iCloud",
    "Aanvullend materiaal",
    "Firewalls",
    "HTTP-proxy",
    "Contentdistributienetwerken en DNS-omzetting",
)
