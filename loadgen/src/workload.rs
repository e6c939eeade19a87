//! Seeded request generation: for each (step, user) a reproducible sequence of
//! (adapter, input length, output length, prompt).

use std::sync::Arc;

use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Normal, Zipf};

use crate::scenario::{Adapter, AdapterSet, LengthDist, PromptSource, Selection, Workload};

/// What one request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    /// Base model or adapter.
    pub adapter: Adapter,
    /// Requested prompt length (synthetic prompts), `None` for prompt files.
    pub input_tokens: Option<u32>,
    /// Requested output length.
    pub max_tokens: u32,
    /// Prompt text.
    pub prompt: String,
}

/// Everything needed to generate requests for one step; shared by its users.
#[derive(Debug)]
pub struct Generator {
    seed: u64,
    step: usize,
    input: LengthSampler,
    output: LengthSampler,
    prompts: PromptSource,
    adapters: Vec<Adapter>,
    picker: Picker,
}

#[derive(Debug)]
enum LengthSampler {
    Uniform(u32, u32),
    Normal(Normal<f64>, u32, u32),
}

impl LengthSampler {
    fn new(d: LengthDist) -> Self {
        match d {
            LengthDist::Uniform { min, max } => LengthSampler::Uniform(min, max),
            LengthDist::Normal {
                mean,
                stddev,
                min,
                max,
            } => LengthSampler::Normal(
                Normal::new(mean, stddev).expect("validated: stddev is finite and >= 0"),
                min,
                max,
            ),
        }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> u32 {
        match *self {
            LengthSampler::Uniform(min, max) => rng.random_range(min..=max),
            LengthSampler::Normal(ref n, min, max) => {
                let x = n.sample(rng).round();
                x.clamp(f64::from(min), f64::from(max)) as u32
            }
        }
    }
}

#[derive(Debug)]
enum Picker {
    Uniform,
    RoundRobin,
    Zipf(Zipf<f64>),
    Weighted(WeightedIndex<f64>),
}

impl Generator {
    /// A generator for step `step` of a run seeded with `seed`.
    pub fn new(seed: u64, step: usize, workload: &Workload, adapters: &AdapterSet) -> Generator {
        let n = adapters.choices.len();
        let picker = match &adapters.selection {
            Selection::Uniform => Picker::Uniform,
            Selection::RoundRobin => Picker::RoundRobin,
            Selection::Zipf(s) => {
                Picker::Zipf(Zipf::new(n as f64, *s).expect("validated: s > 0, n >= 1"))
            }
            Selection::Weighted(w) => Picker::Weighted(
                WeightedIndex::new(w).expect("validated: weights finite, >= 0, not all zero"),
            ),
        };
        Generator {
            seed,
            step,
            input: LengthSampler::new(workload.input_tokens),
            output: LengthSampler::new(workload.output_tokens),
            prompts: workload.prompts.clone(),
            adapters: adapters.choices.clone(),
            picker,
        }
    }

    /// The request stream of one user.
    pub fn user(self: &Arc<Self>, user: usize) -> UserRequests {
        // SplitMix-style mixing keeps (seed, step, user) streams independent.
        let mixed = mix(
            mix(self.seed ^ 0x6c6f_6164_6765_6e00, self.step as u64),
            user as u64,
        );
        UserRequests {
            gen: Arc::clone(self),
            user,
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(mixed),
        }
    }
}

fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_add(0x9e37_79b9_7f4a_7c15)
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One user's reproducible sequence of requests.
#[derive(Debug, Clone)]
pub struct UserRequests {
    gen: Arc<Generator>,
    user: usize,
    seq: u64,
    rng: ChaCha8Rng,
}

impl UserRequests {
    /// The number of the next request in this user's sequence.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The next request.
    pub fn next_request(&mut self) -> RequestSpec {
        let gen = &self.gen;
        let n = gen.adapters.len();
        let idx = match &gen.picker {
            Picker::Uniform => self.rng.random_range(0..n),
            Picker::RoundRobin => (self.user + self.seq as usize) % n,
            Picker::Zipf(z) => (z.sample(&mut self.rng) as usize).clamp(1, n) - 1,
            Picker::Weighted(w) => w.sample(&mut self.rng),
        };
        let adapter = gen.adapters[idx].clone();
        let input = gen.input.sample(&mut self.rng);
        let max_tokens = gen.output.sample(&mut self.rng);
        let (input_tokens, prompt) = match &gen.prompts {
            PromptSource::Synthetic => (Some(input), synthetic_prompt(&mut self.rng, input)),
            PromptSource::Jsonl { prompts, .. } => (
                None,
                prompts[self.rng.random_range(0..prompts.len())].clone(),
            ),
        };
        self.seq += 1;
        RequestSpec {
            adapter,
            input_tokens,
            max_tokens,
            prompt,
        }
    }
}

/// Common short English words: with a leading space each is a single token in
/// Llama/Mistral-style BPE and SentencePiece vocabularies, so `n` words make a
/// prompt of about `n` tokens (the server's own count is recorded too).
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "are", "with", "as", "at", "be",
    "this", "have", "from", "or", "one", "had", "by", "word", "but", "not", "what", "all", "were",
    "we", "when", "your", "can", "said", "there", "use", "an", "each", "which", "she", "do", "how",
    "their", "if", "will", "up", "other", "about", "out", "many", "then", "them", "these", "so",
    "some", "her", "would", "make", "like", "him", "into", "time", "has", "look", "two", "more",
    "write", "go", "see", "number", "no", "way", "could", "people", "my", "than", "first", "water",
    "been", "call", "who", "its", "now", "find", "long", "down", "day", "did", "get", "come",
    "made", "may", "part",
];

fn synthetic_prompt(rng: &mut ChaCha8Rng, tokens: u32) -> String {
    let mut s = String::with_capacity(tokens as usize * 6);
    for i in 0..tokens {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::PromptSource;

    fn workload(selection: Selection, n: usize) -> (Workload, AdapterSet) {
        let adapters = AdapterSet {
            choices: (0..n)
                .map(|i| Adapter::Named(format!("a{i}").into()))
                .collect(),
            selection,
        };
        let w = Workload {
            input_tokens: LengthDist::Uniform { min: 30, max: 500 },
            output_tokens: LengthDist::Normal {
                mean: 60.0,
                stddev: 30.0,
                min: 1,
                max: 120,
            },
            prompts: PromptSource::Synthetic,
            adapters: adapters.clone(),
            ignore_eos: true,
        };
        (w, adapters)
    }

    fn take(gen: &Arc<Generator>, user: usize, n: usize) -> Vec<RequestSpec> {
        let mut u = gen.user(user);
        (0..n).map(|_| u.next_request()).collect()
    }

    #[test]
    fn same_seed_same_sequence_per_user() {
        let (w, a) = workload(Selection::Uniform, 25);
        let g1 = Arc::new(Generator::new(7, 0, &w, &a));
        let g2 = Arc::new(Generator::new(7, 0, &w, &a));
        assert_eq!(take(&g1, 3, 50), take(&g2, 3, 50));
        assert_ne!(take(&g1, 3, 50), take(&g1, 4, 50), "users differ");
        let g3 = Arc::new(Generator::new(8, 0, &w, &a));
        assert_ne!(take(&g1, 3, 50), take(&g3, 3, 50), "seeds differ");
    }

    #[test]
    fn lengths_stay_in_range_and_prompts_have_that_many_words() {
        let (w, a) = workload(Selection::Uniform, 3);
        let g = Arc::new(Generator::new(1, 0, &w, &a));
        for r in take(&g, 0, 500) {
            let n = r.input_tokens.unwrap();
            assert!((30..=500).contains(&n));
            assert_eq!(r.prompt.split(' ').count() as u32, n);
            assert!((1..=120).contains(&r.max_tokens));
        }
    }

    #[test]
    fn selections_follow_their_rule() {
        let (w, a) = workload(Selection::RoundRobin, 4);
        let g = Arc::new(Generator::new(1, 0, &w, &a));
        let names: Vec<String> = take(&g, 1, 5)
            .iter()
            .map(|r| r.adapter.to_string())
            .collect();
        assert_eq!(names, ["a1", "a2", "a3", "a0", "a1"]);

        let (w, a) = workload(Selection::Zipf(1.2), 10);
        let g = Arc::new(Generator::new(1, 0, &w, &a));
        let reqs = take(&g, 0, 4000);
        let first = reqs.iter().filter(|r| r.adapter.label() == "a0").count();
        let last = reqs.iter().filter(|r| r.adapter.label() == "a9").count();
        assert!(
            first > 5 * last,
            "zipf favours the first adapter: {first} vs {last}"
        );

        let (w, mut a) = workload(Selection::Weighted(vec![0.0, 1.0, 0.0]), 3);
        a.selection = Selection::Weighted(vec![0.0, 1.0, 0.0]);
        let g = Arc::new(Generator::new(1, 0, &w, &a));
        assert!(take(&g, 0, 100).iter().all(|r| r.adapter.label() == "a1"));
    }
}
