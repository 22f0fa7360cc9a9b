//! Made-up MediaWiki activity for the demo: recent-change and page-create events in the
//! shapes and proportions of Wikimedia's real streams.

use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Wikis as (domain, database name, weight), in the proportions of real traffic.
const WIKIS: [(&str, &str, u32); 7] = [
    ("en.wikipedia.org", "enwiki", 33),
    ("www.wikidata.org", "wikidatawiki", 25),
    ("commons.wikimedia.org", "commonswiki", 20),
    ("fr.wikipedia.org", "frwiki", 7),
    ("de.wikipedia.org", "dewiki", 7),
    ("ja.wikipedia.org", "jawiki", 5),
    ("es.wikipedia.org", "eswiki", 3),
];
/// Editors as (name, is a bot).
const USERS: [(&str, bool); 10] = [
    ("Speculos", false),
    ("Materialscientist", false),
    ("BrownHairedGirl", false),
    ("Fram", false),
    ("Ymblanter", false),
    ("Citation bot", true),
    ("Edgar181", false),
    ("Lotje", false),
    ("InternetArchiveBot", true),
    ("Xqbot", true),
];
/// Change types as (type, weight).
const TYPES: [(&str, u32); 4] = [("edit", 73), ("log", 10), ("categorize", 8), ("new", 9)];
/// Namespaces as (number, weight): articles most, then talk, user, project, file, category.
const NAMESPACES: [(i64, u32); 6] = [(0, 48), (1, 10), (2, 9), (4, 9), (6, 11), (14, 13)];
const WORDS: [&str; 22] = [
    "Village",
    "Museum",
    "Harbour",
    "Mountain",
    "Festival",
    "Novel",
    "Library",
    "Fortress",
    "Station",
    "Treaty",
    "Orchestra",
    "Island",
    "Comet",
    "Bridge",
    "Castle",
    "Theory",
    "Glacier",
    "Railway",
    "Cathedral",
    "Battle",
    "Election",
    "River",
];
const COMMENTS: [&str; 6] = [
    "added citation",
    "/* History */ copyedit",
    "[[WP:AES|←]]Created page",
    "fix typo",
    "Bot: updating links",
    "Reverted edits",
];
/// Log actions as (log_type, log_action, comment).
const LOG_ACTIONS: [(&str, &str, &str); 5] = [
    ("upload", "upload", "uploaded a new version"),
    (
        "delete",
        "delete",
        "[[WP:CSD#G7|G7]]: One author who has requested deletion",
    ),
    ("patrol", "patrol", ""),
    ("block", "block", "Vandalism"),
    ("move", "move", "better title per talk page"),
];

/// One generated recent change, and the page creation that goes with a new page.
pub struct Change {
    /// The `mediawiki.recentchange` event.
    pub event: Value,
    /// The `mediawiki.page-create` event, for a new page.
    pub page_create: Option<Value>,
}

/// Makes up wiki activity, with ever-growing ids as the real wikis have.
pub struct Generator {
    /// The randomness behind every choice.
    pub rng: StdRng,
    next_rc_id: u64,
    next_rev_id: u64,
    next_page_id: u64,
    next_log_id: u64,
}

impl Generator {
    /// A generator with fresh random ids.
    pub fn new() -> Self {
        let mut rng = StdRng::from_os_rng();
        Generator {
            next_rc_id: 3_000_000_000 + rng.random_range(0..1_000_000),
            next_rev_id: 1_270_000_000,
            next_page_id: 78_000_000,
            next_log_id: 170_000_000,
            rng,
        }
    }

    /// A recent change on a random wiki; a canary one has `meta.domain` `"canary"`.
    pub fn recent_change(&mut self, canary: bool) -> Change {
        let &(domain, wiki, _) = WIKIS
            .choose_weighted(&mut self.rng, |w| w.2)
            .expect("wikis");
        let &(change_type, _) = TYPES
            .choose_weighted(&mut self.rng, |t| t.1)
            .expect("types");
        let &(namespace, _) = NAMESPACES
            .choose_weighted(&mut self.rng, |n| n.1)
            .expect("namespaces");
        let &(user, bot) = USERS.choose(&mut self.rng).expect("users");
        let title = self.title(wiki, namespace);
        let url = format!("https://{domain}/wiki/{}", title.replace(' ', "_"));
        let now = Timestamp::now();
        self.next_rc_id += 1;
        let meta_domain = if canary { "canary" } else { domain };
        let meta = self.meta(&url, meta_domain, "mediawiki.recentchange", now);

        let mut event = json!({
            "$schema": "/mediawiki/recentchange/1.0.0",
            "meta": meta,
            "id": self.next_rc_id,
            "type": change_type,
            "namespace": namespace,
            "title": title,
            "title_url": url,
            "comment": "",
            "timestamp": now.as_second(),
            "user": user,
            "bot": bot,
            "minor": false,
            "patrolled": self.rng.random_bool(0.7),
            "server_url": format!("https://{domain}"),
            "server_name": domain,
            "server_script_path": "/w",
            "wiki": wiki,
        });
        let comment = if change_type == "log" {
            self.next_log_id += 1;
            let &(log_type, log_action, comment) =
                LOG_ACTIONS.choose(&mut self.rng).expect("log actions");
            event["log_id"] = json!(self.next_log_id);
            event["log_type"] = json!(log_type);
            event["log_action"] = json!(log_action);
            comment
        } else {
            let new_page = change_type == "new";
            let old_length = if new_page {
                0
            } else {
                self.rng.random_range(500..90_000)
            };
            let old_rev = if new_page { 0 } else { self.next_rev_id };
            self.next_rev_id += self.rng.random_range(1..5_000);
            event["minor"] = json!(!new_page && self.rng.random_bool(0.3));
            event["length"] = json!({
                "old": if new_page { Value::Null } else { old_length.into() },
                "new": old_length + self.rng.random_range(-1_500..4_000i64).max(-old_length),
            });
            event["revision"] = json!({
                "old": if new_page { Value::Null } else { old_rev.into() },
                "new": self.next_rev_id,
            });
            event["notify_url"] = json!(format!(
                "https://{domain}/w/index.php?diff={}&oldid={old_rev}",
                self.next_rev_id
            ));
            if new_page {
                COMMENTS[2]
            } else {
                COMMENTS.choose(&mut self.rng).expect("comments")
            }
        };
        event["comment"] = json!(comment);
        event["parsedcomment"] = json!(parsed_comment(comment));

        let page_create = (change_type == "new" && !canary).then(|| {
            let mut page = self.page_create(false);
            page["meta"] = self.meta(&url, domain, "mediawiki.page-create", now);
            page["database"] = json!(wiki);
            page["page_title"] = json!(title.replace(' ', "_"));
            page["page_namespace"] = json!(namespace);
            page["rev_id"] = event["revision"]["new"].clone();
            page["rev_len"] = event["length"]["new"].clone();
            page["comment"] = json!(comment);
            page["parsedcomment"] = event["parsedcomment"].clone();
            page["performer"]["user_text"] = json!(user);
            page["performer"]["user_is_bot"] = json!(bot);
            page
        });
        Change { event, page_create }
    }

    /// A `mediawiki.page-create` event for a made-up page.
    pub fn page_create(&mut self, canary: bool) -> Value {
        let &(domain, wiki, _) = WIKIS
            .choose_weighted(&mut self.rng, |w| w.2)
            .expect("wikis");
        let &(user, bot) = USERS.choose(&mut self.rng).expect("users");
        let title = self.title(wiki, 0).replace(' ', "_");
        let url = format!("https://{domain}/wiki/{title}");
        let now = Timestamp::now();
        self.next_page_id += 1;
        self.next_rev_id += 1;
        let meta_domain = if canary { "canary" } else { domain };
        json!({
            "$schema": "/mediawiki/revision/create/2.0.0",
            "meta": self.meta(&url, meta_domain, "mediawiki.page-create", now),
            "database": wiki,
            "page_id": self.next_page_id,
            "page_title": title,
            "page_namespace": 0,
            "page_is_redirect": false,
            "rev_id": self.next_rev_id,
            "rev_parent_id": 0,
            "rev_timestamp": format!("{now:.0}"),
            "rev_len": self.rng.random_range(200..20_000),
            "rev_minor_edit": false,
            "rev_content_model": if wiki == "wikidatawiki" { "wikibase-item" } else { "wikitext" },
            "comment": COMMENTS[2],
            "parsedcomment": parsed_comment(COMMENTS[2]),
            "performer": {
                "user_text": user,
                "user_is_bot": bot,
                "user_edit_count": self.rng.random_range(1..400_000),
            },
            "dt": format!("{now:.0}"),
        })
    }

    fn meta(&mut self, uri: &str, domain: &str, stream: &str, now: Timestamp) -> Value {
        json!({
            "uri": uri,
            "request_id": self.uuid(),
            "id": self.uuid(),
            "dt": format!("{now:.6}"),
            "domain": domain,
            "stream": stream,
        })
    }

    /// A page title such as `Talk:Comet Castle`, with the namespace's prefix.
    fn title(&mut self, wiki: &str, namespace: i64) -> String {
        let first = WORDS.choose(&mut self.rng).expect("words");
        let second = WORDS.choose(&mut self.rng).expect("words");
        let prefix = match (namespace, wiki) {
            (1, _) => "Talk:",
            (2, _) => "User:",
            (4, "wikidatawiki") => "Wikidata:",
            (4, "commonswiki") => "Commons:",
            (4, _) => "Wikipedia:",
            (6, _) => "File:",
            (14, _) => "Category:",
            _ => "",
        };
        let suffix = if namespace == 6 { ".jpg" } else { "" };
        format!("{prefix}{first} {second}{suffix}")
    }

    /// A random version-4 UUID.
    fn uuid(&mut self) -> String {
        let bits: u128 = self.rng.random::<u128>() & !(0xf << 76) & !(0x3 << 62);
        let bits = bits | (0x4 << 76) | (0x2 << 62);
        let hex = format!("{bits:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }
}

/// The HTML MediaWiki renders for an edit summary: section links and wiki links.
fn parsed_comment(comment: &str) -> String {
    if let Some(rest) = comment.strip_prefix("/* History */ ") {
        return format!(
            "<span dir=\"auto\"><span class=\"autocomment\">History: </span> {rest}</span>"
        );
    }
    if let Some(rest) = comment.strip_prefix("[[WP:AES|←]]") {
        return format!("<a href=\"/wiki/Wikipedia:AES\" title=\"Wikipedia:AES\">←</a>{rest}");
    }
    if let Some(rest) = comment.strip_prefix("[[WP:CSD#G7|G7]]") {
        return format!("<a href=\"/wiki/Wikipedia:CSD#G7\" title=\"Wikipedia:CSD\">G7</a>{rest}");
    }
    comment.to_owned()
}
