//! The issuing authority's color rules (`policy.md`, "Where the colors come from"): a
//! subject's facts give a color and a reason code (`token.md`), and every change of
//! color raises the subject's status version by one. The gateway never assigns colors;
//! this is for the issuing side of the project (demos, load tests, the `publish`
//! command), so that the streams it produces follow the real rules.
//!
//! Reading of the rules:
//! - red reasons (a case of any kind, a close contact, abroad in the past 14 days, an
//!   ordered quarantine) each put the subject under quarantine; completing it clears
//!   them all. For people recently abroad, completing centralised quarantine starts 7
//!   days of home observation, still red; completing that clears. A positive nucleic
//!   acid result makes a suspected case. Red-code management by the provincial office is
//!   lifted only by the office.
//! - yellow reasons: fever (cleared by a negative nucleic acid test or by the fever
//!   going), a stay in a medium- or high-risk area (cleared only by a negative test),
//!   yellow-code management (lifted by the office).
//! - otherwise green. Red outranks yellow: a red subject's yellow facts are kept and
//!   show once the red reasons clear.

use serde::{Deserialize, Serialize};

use gateway_core::Color;

/// Kinds of case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    /// A confirmed case.
    Confirmed,
    /// A suspected case (also: a positive nucleic acid result).
    Suspected,
    /// An asymptomatic infection.
    Asymptomatic,
}

/// What is known of one subject that bears on the color.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    /// A case of some kind, under quarantine.
    pub case: Option<Case>,
    /// A close contact, under quarantine.
    pub close_contact: bool,
    /// Abroad in the past 14 days, under quarantine.
    pub abroad: bool,
    /// Quarantine ordered without another reason (e.g. an inbound traveller's order).
    pub quarantine_ordered: bool,
    /// Centralised quarantine done; for people recently abroad, home observation runs.
    pub home_observation: bool,
    /// Red-code management by the provincial office.
    pub red_management: bool,
    /// A fever, not yet cleared.
    pub fever: bool,
    /// A stay in a medium- or high-risk area, not yet cleared by a negative test.
    pub risk_area: bool,
    /// Yellow-code management by the provincial office.
    pub yellow_management: bool,
}

/// Something that happened to a subject (one line of a facts file, `kind` + fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// A diagnosis: confirmed, suspected or asymptomatic.
    Diagnosed {
        /// Which kind of case.
        case: Case,
    },
    /// Identified as a close contact of a case.
    CloseContact,
    /// Lived abroad in the past 14 days (on arrival).
    ReturnedFromAbroad,
    /// Centralised quarantine or home medical observation ordered.
    QuarantineOrdered,
    /// The quarantine (or the home observation that follows one from abroad) is over.
    QuarantineCompleted,
    /// A fever reported.
    Fever,
    /// The fever has gone.
    FeverGone,
    /// Lives in, or stayed in, a medium- or high-risk area: a test is required.
    RiskArea,
    /// A negative nucleic acid test.
    NucleicAcidNegative,
    /// A positive nucleic acid test (a suspected case).
    NucleicAcidPositive,
    /// The office puts the subject under red-code management.
    RedManagement,
    /// The office puts the subject under yellow-code management.
    YellowManagement,
    /// The office lifts its own red or yellow management.
    ManagementLifted,
}

/// Reason codes of `token.md`.
#[allow(missing_docs)] // named as in token.md's table
pub mod why {
    pub const CONFIRMED: u64 = 1;
    pub const SUSPECTED: u64 = 2;
    pub const ASYMPTOMATIC: u64 = 3;
    pub const CLOSE_CONTACT: u64 = 4;
    pub const ABROAD: u64 = 5;
    pub const QUARANTINE: u64 = 6;
    pub const FEVER: u64 = 7;
    pub const RISK_AREA: u64 = 8;
    pub const OFFICE: u64 = 9;
}

impl Facts {
    /// Applies one fact.
    pub fn apply(&mut self, fact: Fact) {
        match fact {
            Fact::Diagnosed { case } => self.case = Some(case),
            Fact::NucleicAcidPositive => {
                if self.case.is_none() {
                    self.case = Some(Case::Suspected);
                }
            }
            Fact::CloseContact => self.close_contact = true,
            Fact::ReturnedFromAbroad => {
                self.abroad = true;
                self.home_observation = false;
            }
            Fact::QuarantineOrdered => self.quarantine_ordered = true,
            Fact::QuarantineCompleted => {
                if self.abroad && !self.home_observation {
                    // From abroad: 7 days of home observation come first.
                    self.home_observation = true;
                } else {
                    self.case = None;
                    self.close_contact = false;
                    self.abroad = false;
                    self.quarantine_ordered = false;
                    self.home_observation = false;
                }
            }
            Fact::Fever => self.fever = true,
            Fact::FeverGone => self.fever = false,
            Fact::RiskArea => self.risk_area = true,
            Fact::NucleicAcidNegative => {
                self.fever = false;
                self.risk_area = false;
            }
            Fact::RedManagement => self.red_management = true,
            Fact::YellowManagement => self.yellow_management = true,
            Fact::ManagementLifted => {
                self.red_management = false;
                self.yellow_management = false;
            }
        }
    }

    /// The color and, for red and yellow, the reason code (the weightiest reason).
    pub fn color(&self) -> (Color, Option<u64>) {
        let red = match self.case {
            Some(Case::Confirmed) => Some(why::CONFIRMED),
            Some(Case::Suspected) => Some(why::SUSPECTED),
            Some(Case::Asymptomatic) => Some(why::ASYMPTOMATIC),
            None if self.close_contact => Some(why::CLOSE_CONTACT),
            None if self.abroad => Some(why::ABROAD),
            None if self.quarantine_ordered => Some(why::QUARANTINE),
            None if self.red_management => Some(why::OFFICE),
            None => None,
        };
        if let Some(w) = red {
            return (Color::Red, Some(w));
        }
        let yellow = if self.fever {
            Some(why::FEVER)
        } else if self.risk_area {
            Some(why::RISK_AREA)
        } else if self.yellow_management {
            Some(why::OFFICE)
        } else {
            None
        };
        match yellow {
            Some(w) => (Color::Yellow, Some(w)),
            None => (Color::Green, None),
        }
    }
}

/// One subject's record on the issuing side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subject {
    /// What is known.
    pub facts: Facts,
    /// The color last published.
    pub color: Color,
    /// Raised by one on every change of color; 0 until the first change.
    pub ver: u64,
}

/// A change of color to publish as a `status` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The new color.
    pub color: Color,
    /// The new status version.
    pub ver: u64,
    /// The reason code (`token.md`), where the rules give one.
    pub why: Option<u64>,
}

impl Subject {
    /// Applies a fact; returns the status change to publish, if the color changed.
    pub fn observe(&mut self, fact: Fact) -> Option<Change> {
        self.facts.apply(fact);
        let (color, why) = self.facts.color();
        if color == self.color {
            return None;
        }
        self.color = color;
        self.ver += 1;
        Some(Change {
            color,
            ver: self.ver,
            why,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Color::{Green, Red, Yellow};

    fn run(facts: &[Fact]) -> (Subject, Vec<Change>) {
        let mut s = Subject::default();
        let changes = facts.iter().filter_map(|f| s.observe(*f)).collect();
        (s, changes)
    }

    fn color_after(facts: &[Fact]) -> (Color, Option<u64>) {
        run(facts).0.facts.color()
    }

    #[test]
    fn each_red_reason() {
        for (f, w) in [
            (
                Fact::Diagnosed {
                    case: Case::Confirmed,
                },
                why::CONFIRMED,
            ),
            (
                Fact::Diagnosed {
                    case: Case::Suspected,
                },
                why::SUSPECTED,
            ),
            (
                Fact::Diagnosed {
                    case: Case::Asymptomatic,
                },
                why::ASYMPTOMATIC,
            ),
            (Fact::NucleicAcidPositive, why::SUSPECTED),
            (Fact::CloseContact, why::CLOSE_CONTACT),
            (Fact::ReturnedFromAbroad, why::ABROAD),
            (Fact::QuarantineOrdered, why::QUARANTINE),
            (Fact::RedManagement, why::OFFICE),
        ] {
            assert_eq!(color_after(&[f]), (Red, Some(w)), "{f:?}");
        }
    }

    #[test]
    fn each_yellow_reason_and_green_otherwise() {
        assert_eq!(color_after(&[Fact::Fever]), (Yellow, Some(why::FEVER)));
        assert_eq!(
            color_after(&[Fact::RiskArea]),
            (Yellow, Some(why::RISK_AREA))
        );
        assert_eq!(
            color_after(&[Fact::YellowManagement]),
            (Yellow, Some(why::OFFICE))
        );
        assert_eq!(color_after(&[]), (Green, None));
    }

    #[test]
    fn red_to_green_when_quarantine_completes() {
        for start in [
            Fact::CloseContact,
            Fact::QuarantineOrdered,
            Fact::Diagnosed {
                case: Case::Asymptomatic,
            },
        ] {
            let (s, changes) = run(&[start, Fact::QuarantineCompleted]);
            assert_eq!(s.color, Green, "{start:?}");
            assert_eq!(changes.len(), 2);
            assert_eq!((changes[0].color, changes[0].ver), (Red, 1));
            assert_eq!((changes[1].color, changes[1].ver), (Green, 2));
        }
    }

    #[test]
    fn abroad_needs_home_observation_after_quarantine() {
        let (s, changes) = run(&[
            Fact::ReturnedFromAbroad,
            Fact::QuarantineCompleted, // centralised quarantine over: home observation
        ]);
        assert_eq!(s.color, Red);
        assert_eq!(changes.len(), 1, "still red: no new version");
        let mut s = s;
        let c = s.observe(Fact::QuarantineCompleted).unwrap();
        assert_eq!((c.color, c.ver, c.why), (Green, 2, None));
    }

    #[test]
    fn fever_without_history_clears_by_test_or_by_itself() {
        let (s, _) = run(&[Fact::Fever, Fact::NucleicAcidNegative]);
        assert_eq!(s.color, Green);
        let (s, changes) = run(&[Fact::Fever, Fact::FeverGone]);
        assert_eq!(s.color, Green);
        assert_eq!(changes.iter().map(|c| c.ver).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn risk_area_clears_only_by_a_negative_test() {
        let (s, _) = run(&[Fact::RiskArea, Fact::Fever, Fact::FeverGone]);
        assert_eq!(s.facts.color(), (Yellow, Some(why::RISK_AREA)));
        let (s, _) = run(&[Fact::RiskArea, Fact::NucleicAcidNegative]);
        assert_eq!(s.color, Green);
    }

    #[test]
    fn red_outranks_yellow_and_yellow_shows_after() {
        let (s, changes) = run(&[
            Fact::RiskArea,
            Fact::CloseContact,
            Fact::QuarantineCompleted,
        ]);
        assert_eq!(s.facts.color(), (Yellow, Some(why::RISK_AREA)));
        let seq: Vec<_> = changes.iter().map(|c| (c.color, c.ver)).collect();
        assert_eq!(seq, [(Yellow, 1), (Red, 2), (Yellow, 3)]);
    }

    #[test]
    fn a_positive_test_makes_a_suspected_case_that_quarantine_clears() {
        let (s, _) = run(&[Fact::Fever, Fact::NucleicAcidPositive]);
        assert_eq!(s.facts.color(), (Red, Some(why::SUSPECTED)));
        let (s, _) = run(&[
            Fact::NucleicAcidPositive,
            Fact::Diagnosed {
                case: Case::Confirmed,
            },
        ]);
        assert_eq!(s.facts.case, Some(Case::Confirmed));
    }

    #[test]
    fn office_management_is_lifted_only_by_the_office() {
        let (s, _) = run(&[Fact::RedManagement, Fact::QuarantineCompleted]);
        assert_eq!(s.color, Red);
        let (s, _) = run(&[Fact::RedManagement, Fact::ManagementLifted]);
        assert_eq!(s.color, Green);
        let (s, _) = run(&[Fact::YellowManagement, Fact::NucleicAcidNegative]);
        assert_eq!(s.color, Yellow);
    }

    #[test]
    fn facts_that_do_not_change_the_color_do_not_raise_the_version() {
        let (s, changes) = run(&[
            Fact::CloseContact,
            Fact::Fever,
            Fact::RiskArea,
            Fact::CloseContact,
        ]);
        assert_eq!((s.color, s.ver, changes.len()), (Red, 1, 1));
    }

    #[test]
    fn facts_parse_from_json_lines() {
        let f: Fact = serde_json::from_str(r#"{"fact":"diagnosed","case":"confirmed"}"#).unwrap();
        assert_eq!(
            f,
            Fact::Diagnosed {
                case: Case::Confirmed
            }
        );
        let f: Fact = serde_json::from_str(r#"{"fact":"nucleic_acid_negative"}"#).unwrap();
        assert_eq!(f, Fact::NucleicAcidNegative);
        assert!(serde_json::from_str::<Fact>(r#"{"fact":"sneezed"}"#).is_err());
    }
}
