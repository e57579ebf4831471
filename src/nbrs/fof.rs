//! Friends-of-friends groups from a neighbour list (ngmixer `NbrsFoF`, spec §6.2).
//!
//! Groups are the connected components of the neighbour graph (taken as undirected). Their
//! labels reproduce the Python original exactly: it links object by object, merging groups as
//! it meets them, and numbers the surviving groups in dictionary order. Which group survives a
//! merge depends on the order in which a CPython `set` of small integers yields its members,
//! so that order is emulated ([`cpython_set_order`]); the labels are then those of ngmixer,
//! dense `0..nfof-1`.

use crate::error::{Error, Result};

/// One FoF table row: `(fofid, number)`.
pub type FofRow = (i64, i64);

/// The order in which CPython (3.x, `Objects/setobject.c`) iterates `set(values)` built by
/// adding non-negative integers (hash = value) in the given order: open addressing over a
/// power-of-two table with 9 linear probes then perturbed jumps, grown ×4 once 3/5 full.
pub fn cpython_set_order(values: &[u64]) -> Vec<u64> {
    const LINEAR_PROBES: usize = 9;
    const PERTURB_SHIFT: u32 = 5;
    fn slot(table: &[Option<u64>], hash: u64) -> usize {
        let mask = table.len() - 1;
        let mut perturb = hash as usize;
        let mut i = (hash as usize) & mask;
        loop {
            let probes = if i + LINEAR_PROBES <= mask {
                LINEAR_PROBES
            } else {
                0
            };
            for k in 0..=probes {
                if table[i + k].is_none() {
                    return i + k;
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb)) & mask;
        }
    }
    let mut table: Vec<Option<u64>> = vec![None; 8];
    let mut used = 0usize;
    for &v in values {
        // a value already present is found before any free slot (no deletions happen)
        if table.contains(&Some(v)) {
            continue;
        }
        let s = slot(&table, v);
        table[s] = Some(v);
        used += 1;
        let mask = table.len() - 1;
        if used * 5 >= mask * 3 {
            let minused = if used > 50000 { used * 2 } else { used * 4 };
            let mut newsize = 8;
            while newsize <= minused {
                newsize <<= 1;
            }
            let old = std::mem::replace(&mut table, vec![None; newsize]);
            for v in old.into_iter().flatten() {
                let s = slot(&table, v);
                table[s] = Some(v);
            }
        }
    }
    table.into_iter().flatten().collect()
}

/// The FoF table of a neighbour list (rows `(number, nbr_number)`): one row
/// `(fofid, number)` per object, sorted by `number`, `fofid` dense `0..nfof-1` with ngmixer's
/// labelling. Objects are the unique `number`s, which must be `1..N`; `nbr_number <= 0` means
/// none.
///
/// # Errors
/// [`Error::Invalid`] when the numbers are not `1..N` or a neighbour is not one of them.
pub fn find_fofs(nbrs: &[(i64, i64)]) -> Result<Vec<FofRow>> {
    let mut numbers: Vec<i64> = nbrs.iter().map(|r| r.0).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let n = numbers.len();
    if let Some((k, &num)) = numbers
        .iter()
        .enumerate()
        .find(|&(k, &num)| num != k as i64 + 1)
    {
        return Err(Error::Invalid(format!(
            "neighbour list: the object numbers must be 1..{n}, but the {}-th smallest is {num}",
            k + 1
        )));
    }
    // adjacency in list order (ngmixer selects the rows of `number == i+1` in table order)
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut sorted: Vec<(i64, i64)> = nbrs.to_vec();
    sorted.sort_by_key(|r| r.0); // stable: keeps the order within an object
    for &(num, nbr) in &sorted {
        if nbr <= 0 {
            continue;
        }
        if nbr as usize > n {
            return Err(Error::Invalid(format!(
                "neighbour list: object {num} has neighbour {nbr}, not one of the {n} objects"
            )));
        }
        adj[(num - 1) as usize].push((nbr - 1) as usize);
    }

    // ngmixer's incremental linking; groups keyed by their creating object, in creation
    // order (a Python dict), members tracked by `linked`
    let mut linked: Vec<i64> = vec![-1; n];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n]; // by key
    let mut alive: Vec<bool> = vec![false; n]; // by key; keys are created in ascending order
    for m in 0..n {
        let order: Vec<u64> =
            cpython_set_order(&adj[m].iter().map(|&k| k as u64).collect::<Vec<_>>());
        let mut fofid = if linked[m] == -1 {
            members[m] = vec![m];
            alive[m] = true;
            linked[m] = m as i64;
            m
        } else {
            linked[m] as usize
        };
        for nbr in order {
            let nbr = nbr as usize;
            if linked[nbr] == -1 || linked[nbr] == fofid as i64 {
                if linked[nbr] == -1 {
                    members[fofid].push(nbr);
                }
                linked[nbr] = fofid as i64;
            } else {
                let into = linked[nbr] as usize;
                let moved = std::mem::take(&mut members[fofid]);
                alive[fofid] = false;
                members[into].extend(moved);
                fofid = into;
                for &k in &members[fofid] {
                    linked[k] = fofid as i64;
                }
            }
        }
    }
    let mut label = vec![-1i64; n];
    let mut next = 0i64;
    for key in 0..n {
        if alive[key] {
            for &k in &members[key] {
                label[k] = next;
            }
            next += 1;
        }
    }
    let rows: Vec<FofRow> = (0..n).map(|i| (label[i], i as i64 + 1)).collect();
    if let Some(r) = rows.iter().find(|r| r.0 < 0) {
        return Err(Error::Invalid(format!(
            "FoF linking left object {} without a group",
            r.1
        )));
    }
    Ok(rows)
}
