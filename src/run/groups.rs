//! The units of work of a run: FoF groups of source objects (spec §3.2), or one object each
//! when there is no FoF table.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::flags::DEFVAL;

/// One FoF group: its id and its members (source indices, in source order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The FoF id (`-9999` for the one-object groups of a run without a FoF table).
    pub fofid: i64,
    /// Source indices of the members.
    pub members: Vec<usize>,
}

/// The groups of a run, in processing order (ascending FoF id).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Groups {
    groups: Vec<Group>,
}

/// An inclusive range `A,B` of `--fof-range`.
pub type FofRange = (i64, i64);

/// Parse `--fof-range A,B` (inclusive, `0 <= A <= B`).
///
/// # Errors
/// [`Error::Invalid`] naming the option and the text.
pub fn parse_fof_range(s: &str) -> Result<FofRange> {
    let bad = |why: &str| Error::Usage(format!("--fof-range {s:?}: {why}"));
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != 2 {
        return Err(bad("need two integers A,B"));
    }
    let a: i64 = parts[0]
        .trim()
        .parse()
        .map_err(|_| bad("start is not an integer"))?;
    let b: i64 = parts[1]
        .trim()
        .parse()
        .map_err(|_| bad("end is not an integer"))?;
    if a < 0 || b < a {
        return Err(bad("need 0 <= A <= B"));
    }
    Ok((a, b))
}

impl Groups {
    /// One group per object (no FoF table): objects `A..=B` of `range`, or all; the end of the
    /// range is clipped to the source (as the original does), its start must lie inside.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the range starts beyond the last object.
    pub fn singletons(nobj: usize, range: Option<FofRange>) -> Result<Self> {
        if nobj == 0 {
            return match range {
                None => Ok(Self::default()),
                Some((a, b)) => Err(Error::Usage(format!(
                    "--fof-range {a},{b}: the MEDS file has no objects"
                ))),
            };
        }
        let (a, b) = range.unwrap_or((0, nobj as i64 - 1));
        if a < 0 || a as usize >= nobj {
            return Err(Error::Usage(format!(
                "--fof-range start {a} is beyond the {nobj} objects of the MEDS file \
                 (valid: 0..{})",
                nobj - 1
            )));
        }
        let b = (b.max(a) as usize).min(nobj - 1);
        Ok(Self {
            groups: (a as usize..=b)
                .map(|i| Group {
                    fofid: DEFVAL as i64,
                    members: vec![i],
                })
                .collect(),
        })
    }

    /// Groups from a FoF table (`fofid`, `number` per row, `what` names it in errors). Row
    /// `i` must describe source object `i` (`number` equal to the source's, spec §3.2). With a
    /// range, only FoF ids in `[A, B]` are kept.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the table and the first mismatching row, or a range that
    /// selects no group.
    pub fn from_fof_table(
        what: &str,
        fofid: &[i64],
        number: &[i64],
        source_numbers: &[i64],
        range: Option<FofRange>,
    ) -> Result<Self> {
        if fofid.len() != number.len() {
            return Err(Error::Invalid(format!(
                "{what}: columns fofid ({}) and number ({}) differ in length",
                fofid.len(),
                number.len()
            )));
        }
        if number.len() != source_numbers.len() {
            return Err(Error::Invalid(format!(
                "{what}: {} rows but the MEDS file has {} objects",
                number.len(),
                source_numbers.len()
            )));
        }
        if let Some(i) = (0..number.len()).find(|&i| number[i] != source_numbers[i]) {
            return Err(Error::Invalid(format!(
                "{what}: row {i} has number {} but the MEDS file has {} (the FoF table must \
                 list the MEDS objects in order)",
                number[i], source_numbers[i]
            )));
        }
        let mut by: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, &f) in fofid.iter().enumerate() {
            by.entry(f).or_default().push(i);
        }
        let (lo, hi) = match (by.keys().next(), by.keys().next_back()) {
            (Some(&lo), Some(&hi)) => (lo, hi),
            _ => return Ok(Self::default()),
        };
        let groups: Vec<Group> = by
            .into_iter()
            .filter(|(f, _)| range.is_none_or(|(a, b)| *f >= a && *f <= b))
            .map(|(fofid, members)| Group { fofid, members })
            .collect();
        if groups.is_empty() {
            if let Some((a, b)) = range {
                return Err(Error::Usage(format!(
                    "--fof-range {a},{b} selects no FoF group of {what} (its fofids span \
                     {lo}..{hi})"
                )));
            }
        }
        Ok(Self { groups })
    }

    /// Groups given directly.
    pub fn from_groups(groups: Vec<Group>) -> Self {
        Self { groups }
    }

    /// The groups.
    pub fn as_slice(&self) -> &[Group] {
        &self.groups
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there is no group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Number of objects over all groups.
    pub fn nobj(&self) -> usize {
        self.groups.iter().map(|g| g.members.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_clip() {
        assert_eq!(parse_fof_range("3,7").unwrap(), (3, 7));
        assert_eq!(parse_fof_range(" 0 , 0 ").unwrap(), (0, 0));
        for bad in ["3", "7,3", "-1,2", "a,b", "1,2,3"] {
            assert!(parse_fof_range(bad).is_err(), "{bad}");
        }
        let g = Groups::singletons(10, Some((8, 20))).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g.as_slice()[1].members, vec![9]);
        let e = Groups::singletons(10, Some((10, 12)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("beyond the 10 objects"), "{e}");
        assert!(Groups::singletons(0, None).unwrap().is_empty());
        assert!(Groups::singletons(0, Some((0, 2))).is_err());
    }

    #[test]
    fn fof_tables_group_by_id_in_order() {
        let fof = [5, 2, 5, 9];
        let num = [1, 2, 3, 4];
        let g = Groups::from_fof_table("f", &fof, &num, &num, None).unwrap();
        let ids: Vec<i64> = g.as_slice().iter().map(|g| g.fofid).collect();
        assert_eq!(ids, vec![2, 5, 9]);
        assert_eq!(g.as_slice()[1].members, vec![0, 2]);
        assert_eq!(g.nobj(), 4);
        let r = Groups::from_fof_table("f", &fof, &num, &num, Some((3, 6))).unwrap();
        assert_eq!(r.len(), 1);
        let e = Groups::from_fof_table("f", &fof, &num, &num, Some((10, 12)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("selects no FoF group") && e.contains("2..9"),
            "{e}"
        );
        let e = Groups::from_fof_table("f", &fof, &num, &[1, 2, 7, 4], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 2 has number 3"), "{e}");
    }
}
