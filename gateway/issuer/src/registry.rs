//! The issuing side's registry (`registry.json` in the state directory): per pseudonym,
//! only what the color rules of `policy.md` need to go on from the next fact.
//!
//! Kept: which facts hold (a case, a close contact, …) and the version. Not kept: the
//! color (it follows from the facts), identity numbers (the key is the pseudonym), and
//! the kind of a case (confirmed, suspected, asymptomatic), which changes no color and
//! only picks the reason code: it is kept only by runs with `--with-why`. (A case held
//! without its kind needs none: the color can change for a case's sake only with the
//! fact that makes the case, which names it.)

use std::collections::HashMap;
use std::path::Path;

use crate::colors::{Case, Fact, Facts, Subject};
use gateway_core::Color;
use serde::{Deserialize, Serialize};

use crate::IssueError;

/// A fact that holds for a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Held {
    Case,
    CloseContact,
    Abroad,
    QuarantineOrdered,
    HomeObservation,
    RedManagement,
    Fever,
    RiskArea,
    YellowManagement,
}

/// One subject as stored.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Entry {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    holds: Vec<Held>,
    /// The kind of the case, with `--with-why` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    case: Option<Case>,
    ver: u64,
    /// The layout before this one (every fact, the color): read, never written.
    #[serde(default, skip_serializing)]
    facts: Option<Facts>,
}

/// One subject in memory.
#[derive(Debug, Clone, Copy, Default)]
struct Record {
    subject: Subject,
    /// Whether `subject.facts.case` names the real kind (false: a stand-in, the kind
    /// was not kept).
    kind_known: bool,
}

/// The registry, loaded.
#[derive(Debug, Default)]
pub struct Registry {
    subjects: HashMap<String, Record>,
}

impl Registry {
    /// Reads `path`; a missing file is an empty registry.
    pub fn load(path: &Path) -> Result<Registry, IssueError> {
        let stored: HashMap<String, Entry> = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| IssueError::file(path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(IssueError::file(path, e)),
        };
        let subjects = stored
            .into_iter()
            .map(|(name, e)| (name, e.into_record()))
            .collect();
        Ok(Registry { subjects })
    }

    /// Applies a fact to the subject named `name` (its pseudonym); returns the status
    /// change to publish, if the color changed, with its reason code when `with_why`.
    pub fn observe(
        &mut self,
        name: String,
        fact: Fact,
        with_why: bool,
    ) -> Option<(Color, u64, Option<u64>)> {
        let r = self.subjects.entry(name).or_default();
        let had_case = r.subject.facts.case.is_some();
        let c = r.subject.observe(fact);
        r.kind_known = match (fact, r.subject.facts.case) {
            (_, None) | (Fact::Diagnosed { .. }, _) => true,
            (Fact::NucleicAcidPositive, Some(_)) if !had_case => true,
            _ => r.kind_known,
        };
        let c = c?;
        // A change for a case's sake comes only with the fact that makes the case, so a
        // stand-in kind never picks a reason code.
        let why = c.why.filter(|_| with_why);
        Some((c.color, c.ver, why))
    }

    /// The color last published for the subject named `name` (green when it has none).
    pub fn color_of(&self, name: &str) -> Color {
        self.subjects
            .get(name)
            .map_or(Color::Green, |r| r.subject.color)
    }

    /// Writes the registry to `path` (a temporary file renamed over it, owner-only); the
    /// kind of a case is written only when `with_why`.
    pub fn save(&self, path: &Path, with_why: bool) -> Result<(), IssueError> {
        let stored: HashMap<&str, Entry> = self
            .subjects
            .iter()
            .map(|(name, r)| (name.as_str(), Entry::from_record(r, with_why)))
            .collect();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec(&stored).map_err(|e| IssueError::file(path, e))?;
        crate::owner_only::write(&tmp, &text).map_err(|e| IssueError::file(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| IssueError::file(path, e))
    }
}

impl Entry {
    fn into_record(self) -> Record {
        if let Some(facts) = self.facts {
            // The earlier layout kept everything.
            return Record {
                subject: subject(facts, self.ver),
                kind_known: true,
            };
        }
        let has = |h: Held| self.holds.contains(&h);
        let facts = Facts {
            // A stand-in kind when it was not kept: any kind makes the same color.
            case: has(Held::Case).then(|| self.case.unwrap_or(Case::Suspected)),
            close_contact: has(Held::CloseContact),
            abroad: has(Held::Abroad),
            quarantine_ordered: has(Held::QuarantineOrdered),
            home_observation: has(Held::HomeObservation),
            red_management: has(Held::RedManagement),
            fever: has(Held::Fever),
            risk_area: has(Held::RiskArea),
            yellow_management: has(Held::YellowManagement),
        };
        Record {
            subject: subject(facts, self.ver),
            kind_known: self.case.is_some() || facts.case.is_none(),
        }
    }

    fn from_record(r: &Record, with_why: bool) -> Entry {
        let f = &r.subject.facts;
        let holds = [
            (f.case.is_some(), Held::Case),
            (f.close_contact, Held::CloseContact),
            (f.abroad, Held::Abroad),
            (f.quarantine_ordered, Held::QuarantineOrdered),
            (f.home_observation, Held::HomeObservation),
            (f.red_management, Held::RedManagement),
            (f.fever, Held::Fever),
            (f.risk_area, Held::RiskArea),
            (f.yellow_management, Held::YellowManagement),
        ]
        .into_iter()
        .filter_map(|(on, h)| on.then_some(h))
        .collect();
        Entry {
            holds,
            case: f.case.filter(|_| with_why && r.kind_known),
            ver: r.subject.ver,
            facts: None,
        }
    }
}

/// A subject whose color is the one its facts give.
fn subject(facts: Facts, ver: u64) -> Subject {
    Subject {
        facts,
        color: facts.color().0,
        ver,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(dir: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("registry-{dir}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        crate::owner_only::dir(&d).unwrap();
        d.join("registry.json")
    }

    #[test]
    fn only_what_the_rules_need_is_kept_and_colors_go_on_the_same() {
        let p = at("minimal");
        let mut r = Registry::default();
        let confirmed = Fact::Diagnosed {
            case: Case::Confirmed,
        };
        assert_eq!(
            r.observe("A".into(), confirmed, false),
            Some((Color::Red, 1, None))
        );
        r.observe("A".into(), Fact::CloseContact, false);
        assert_eq!(
            r.observe("B".into(), Fact::Fever, false),
            Some((Color::Yellow, 1, None))
        );
        r.save(&p, false).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        for word in ["confirmed", "color", "red", "yellow", "green"] {
            assert!(!text.contains(word), "{word} in {text}");
        }
        // Loaded again, the rules go on as if nothing had been dropped.
        let mut r = Registry::load(&p).unwrap();
        assert_eq!(
            r.observe("A".into(), Fact::QuarantineCompleted, false),
            Some((Color::Green, 2, None))
        );
        assert_eq!(
            r.observe("B".into(), Fact::NucleicAcidNegative, false),
            Some((Color::Green, 2, None))
        );
    }

    #[test]
    fn the_kind_of_a_case_is_kept_with_why_only() {
        use crate::colors::why;
        let p = at("why");
        let asym = Fact::Diagnosed {
            case: Case::Asymptomatic,
        };
        // A run without --with-why: B's kind is not kept.
        let mut r = Registry::default();
        assert_eq!(
            r.observe("B".into(), asym, false),
            Some((Color::Red, 1, None))
        );
        r.save(&p, false).unwrap();
        // A run with it: A's kind is, B's (unknown now) is not invented.
        let mut r = Registry::load(&p).unwrap();
        assert_eq!(
            r.observe("A".into(), asym, true),
            Some((Color::Red, 1, Some(why::ASYMPTOMATIC)))
        );
        r.observe("B".into(), Fact::CloseContact, true);
        r.save(&p, true).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.matches("asymptomatic").count(), 1, "{text}");
        assert!(!text.contains("suspected"), "{text}");
        let mut r = Registry::load(&p).unwrap();
        // A's case is over, then it is red again as a close contact.
        assert_eq!(
            r.observe("A".into(), Fact::QuarantineCompleted, true),
            Some((Color::Green, 2, None))
        );
        assert_eq!(
            r.observe("A".into(), Fact::CloseContact, true),
            Some((Color::Red, 3, Some(why::CLOSE_CONTACT)))
        );
        r.save(&p, true).unwrap();
        assert!(!std::fs::read_to_string(&p)
            .unwrap()
            .contains("asymptomatic"));
    }

    #[test]
    fn the_earlier_layout_is_read() {
        let p = at("old");
        std::fs::write(
            &p,
            r#"{"A":{"facts":{"case":"confirmed","fever":true},"color":"red","ver":3}}"#,
        )
        .unwrap();
        let mut r = Registry::load(&p).unwrap();
        assert_eq!(
            r.observe("A".into(), Fact::QuarantineCompleted, true),
            Some((Color::Yellow, 4, Some(crate::colors::why::FEVER)))
        );
    }
}
