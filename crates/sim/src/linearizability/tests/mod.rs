//! Hand-made histories with known verdicts; random small histories checked
//! against brute force are in [`random`], minimal conflicting sets in
//! [`conflict`].

mod brute_force;
mod conflict;
mod random;

use super::*;

type RegisterOp = Operation<RegisterInput, RegisterOutput>;
type KvOp = Operation<KvInput, KvOutput>;

/// An operation that returned `output` at `ret`.
fn done<I, O>(client: u64, call: u64, ret: u64, input: I, output: O) -> Operation<I, O> {
    Operation {
        client,
        call,
        ret: Some(ret),
        input,
        output: Some(output),
    }
}

/// An operation whose outcome is unknown.
fn unknown<I, O>(client: u64, call: u64, input: I) -> Operation<I, O> {
    Operation {
        client,
        call,
        ret: None,
        input,
        output: None,
    }
}

fn write(client: u64, call: u64, ret: u64, v: i64) -> RegisterOp {
    done(
        client,
        call,
        ret,
        RegisterInput::Write(v),
        RegisterOutput::Done,
    )
}

fn read(client: u64, call: u64, ret: u64, v: Option<i64>) -> RegisterOp {
    done(
        client,
        call,
        ret,
        RegisterInput::Read,
        RegisterOutput::Value(v),
    )
}

fn cas(client: u64, call: u64, ret: u64, from: i64, to: i64, ok: bool) -> RegisterOp {
    let input = RegisterInput::Cas { from, to };
    done(client, call, ret, input, RegisterOutput::Swapped(ok))
}

fn get(client: u64, call: u64, ret: u64, key: &str, v: Option<&str>) -> KvOp {
    let input = KvInput::Get { key: key.into() };
    done(
        client,
        call,
        ret,
        input,
        KvOutput::Value(v.map(String::from)),
    )
}

fn put(client: u64, call: u64, ret: u64, key: &str, v: &str) -> KvOp {
    let input = KvInput::Put {
        key: key.into(),
        value: v.into(),
    };
    done(client, call, ret, input, KvOutput::Done)
}

fn append(client: u64, call: u64, ret: u64, key: &str, v: &str) -> KvOp {
    let input = KvInput::Append {
        key: key.into(),
        value: v.into(),
    };
    done(client, call, ret, input, KvOutput::Done)
}

fn linearizable<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool {
    match check(model, history, None) {
        Verdict::Linearizable => true,
        Verdict::NotLinearizable(_) => false,
        Verdict::Unknown => panic!("Unknown without a budget"),
    }
}

#[test]
fn empty_history_is_linearizable() {
    assert!(linearizable(&Register, &[]));
    assert!(linearizable(&Kv::default(), &[]));
}

#[test]
fn sequential_register() {
    let h = [
        read(0, 0, 1, None),
        write(0, 2, 3, 1),
        read(1, 4, 5, Some(1)),
        cas(1, 6, 7, 1, 2, true),
        cas(0, 8, 9, 1, 3, false),
        read(0, 10, 11, Some(2)),
    ];
    assert!(linearizable(&Register, &h));
}

#[test]
fn stale_read_counterexample() {
    let h = [write(0, 0, 1, 1), read(1, 2, 3, None)];
    let Verdict::NotLinearizable(c) = check(&Register, &h, None) else {
        panic!("a stale read passed");
    };
    assert_eq!(c.conflict, [0, 1]);
    assert_eq!(c.linearized, [0]);
    assert_eq!(c.next, [1]);
    let text = c.describe(&h);
    let write = "  #0 client 0 [0, 1] Write(1) -> Done\n";
    let read = "  #1 client 1 [2, 3] Read -> Value(None)\n";
    assert_eq!(
        text,
        format!(
            "minimal conflicting set (no order explains these):\n{write}{read}\
             longest partial linearization:\n{write}\
             could come next, but the model rejects each:\n{read}"
        )
    );
}

#[test]
fn concurrent_reads_see_old_or_new() {
    // Reads overlapping a write may see either value...
    let h = [
        write(0, 0, 10, 1),
        read(1, 1, 2, None),
        read(2, 3, 4, Some(1)),
    ];
    assert!(linearizable(&Register, &h));
    // ...but once one saw the new value, a later one cannot see the old.
    let h = [
        write(0, 0, 10, 1),
        read(1, 1, 2, Some(1)),
        read(2, 3, 4, None),
    ];
    assert!(!linearizable(&Register, &h));
}

#[test]
fn operations_that_touch_are_concurrent() {
    assert!(linearizable(
        &Register,
        &[write(0, 0, 5, 1), read(1, 5, 6, None)]
    ));
    assert!(!linearizable(
        &Register,
        &[write(0, 0, 5, 1), read(1, 6, 7, None)]
    ));
}

#[test]
fn unknown_outcomes_may_take_effect_late_or_never() {
    let w = || unknown(0, 0, RegisterInput::Write(1));
    // Took effect before the read.
    assert!(linearizable(&Register, &[w(), read(1, 5, 6, Some(1))]));
    // Took effect after the first read, long after its call.
    assert!(linearizable(
        &Register,
        &[w(), read(1, 5, 6, None), read(1, 7, 8, Some(1))]
    ));
    // Never took effect.
    assert!(linearizable(&Register, &[w(), read(1, 5, 6, None)]));
    // But it cannot be undone once seen...
    assert!(!linearizable(
        &Register,
        &[w(), read(1, 2, 3, Some(1)), read(1, 5, 6, None)]
    ));
    // ...nor seen before its call.
    assert!(!linearizable(
        &Register,
        &[
            read(1, 0, 1, Some(1)),
            unknown(0, 2, RegisterInput::Write(1))
        ]
    ));
}

#[test]
fn unknown_output_is_ignored() {
    let mut r = read(0, 0, 1, Some(7));
    r.ret = None;
    assert!(linearizable(&Register, &[r]));
    // A known return with an unknown output accepts any output.
    let mut r = read(0, 0, 1, None);
    r.output = None;
    assert!(linearizable(&Register, &[write(1, 0, 1, 3), r]));
}

#[test]
fn cas_outcomes() {
    // A failed cas concurrent with the write it would match goes first.
    assert!(linearizable(
        &Register,
        &[cas(0, 0, 3, 1, 2, false), write(1, 1, 2, 1)]
    ));
    // After the write it would have matched.
    assert!(!linearizable(
        &Register,
        &[write(1, 0, 1, 1), cas(0, 2, 3, 1, 2, false)]
    ));
    // Two successful cas from the same value cannot both succeed.
    assert!(!linearizable(
        &Register,
        &[
            write(0, 0, 1, 1),
            cas(1, 2, 5, 1, 2, true),
            cas(2, 2, 5, 1, 3, true),
        ]
    ));
    // A cas of unknown outcome may explain a later read.
    assert!(linearizable(
        &Register,
        &[
            write(0, 0, 1, 1),
            unknown(1, 2, RegisterInput::Cas { from: 1, to: 2 }),
            read(0, 3, 4, Some(2)),
        ]
    ));
}

#[test]
fn outputs_of_the_wrong_kind_are_rejected() {
    let h = [done(0, 0, 1, RegisterInput::Read, RegisterOutput::Done)];
    assert!(!linearizable(&Register, &h));
    let h = [done(
        0,
        0,
        1,
        KvInput::Get { key: "a".into() },
        KvOutput::Swapped(true),
    )];
    assert!(!linearizable(&Kv::default(), &h));
}

#[test]
fn kv_append_and_keys() {
    let h = [
        append(0, 0, 1, "a", "x"),
        append(1, 0, 1, "a", "y"),
        put(2, 0, 1, "b", "z"),
        get(0, 2, 3, "a", Some("yx")),
        get(1, 2, 3, "b", Some("z")),
        get(2, 2, 3, "c", None),
    ];
    assert!(linearizable(&Kv::default(), &h));
    let mut bad = h.clone();
    bad[3] = get(0, 2, 3, "a", Some("y"));
    assert!(!linearizable(&Kv::default(), &bad));
}

#[test]
fn kv_counterexample_indexes_the_whole_history() {
    let h = [
        put(0, 0, 1, "a", "1"),
        put(1, 0, 1, "b", "1"),
        get(0, 2, 3, "a", Some("1")),
        get(1, 4, 5, "b", None),
    ];
    let Verdict::NotLinearizable(c) = check(&Kv::default(), &h, None) else {
        panic!("a stale read passed");
    };
    assert_eq!(c.conflict, [1, 3]);
    assert_eq!((c.linearized, c.next), (vec![1], vec![3]));
}

#[test]
fn kv_missing_keys() {
    let read_empty = [get(0, 0, 1, "a", Some(""))];
    assert!(!linearizable(&Kv::new(MissingKey::Absent), &read_empty));
    assert!(linearizable(&Kv::new(MissingKey::Empty), &read_empty));
    assert!(linearizable(
        &Kv::new(MissingKey::Empty),
        &[get(0, 0, 1, "a", None)]
    ));
    let cas_missing = |from: Option<&str>| {
        let input = KvInput::Cas {
            key: "a".into(),
            from: from.map(String::from),
            to: "1".into(),
        };
        [
            done(0, 0, 1, input, KvOutput::Swapped(true)),
            get(0, 2, 3, "a", Some("1")),
        ]
    };
    assert!(linearizable(
        &Kv::new(MissingKey::Absent),
        &cas_missing(None)
    ));
    assert!(!linearizable(
        &Kv::new(MissingKey::Absent),
        &cas_missing(Some(""))
    ));
    assert!(linearizable(
        &Kv::new(MissingKey::Empty),
        &cas_missing(Some(""))
    ));
    assert!(linearizable(
        &Kv::new(MissingKey::Empty),
        &cas_missing(None)
    ));
}

#[test]
fn budget_exhaustion_is_unknown() {
    let h = [write(0, 0, 1, 1), read(1, 2, 3, Some(1))];
    assert_eq!(check(&Register, &h, Some(0)), Verdict::Unknown);
    assert_eq!(check(&Register, &h, Some(100)), Verdict::Linearizable);
    // Nothing to linearize needs no step.
    let h = [unknown(0, 0, RegisterInput::Write(1))];
    assert_eq!(check(&Register, &h, Some(0)), Verdict::Linearizable);
}

/// Operations of unknown outcome stay candidates for the rest of the
/// history, so each multiplies the configurations to explore; a dozen
/// concurrent ones must still be quick, linearizable or not.
#[test]
fn a_dozen_unknown_writes_stay_fast() {
    let mut h: Vec<RegisterOp> = (0..12)
        .map(|i| unknown(i, i, RegisterInput::Write(i as i64)))
        .collect();
    for i in 0..12 {
        h.push(read(100, 100 + 2 * i, 101 + 2 * i, Some(11 - i as i64)));
    }
    assert!(linearizable(&Register, &h));
    h.push(read(100, 200, 201, Some(99)));
    assert!(!linearizable(&Register, &h));
}
