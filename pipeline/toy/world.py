"""Build the toy world: every raw corpus of the paper, in its real on-disk format, offline.

`build_world(folder, cfg)` writes, deterministically from `cfg.seed`:

    www/scenes/<id>.jpg                 images served by the loopback server (URL lists, WIT)
    images/coco/train2017/<id>.jpg      the image root of the LLaVA-format corpora
    cc_sbu/urls.parquet, laion/urls.parquet          url + caption (img2dataset input)
    llava/llava_instruct.json           LLaVA-Instruct: a JSON list of conversations
    palo/palo_multilingual.json         PALO: LLaVA format, conversations in the ten languages
    cambrian/Cambrian7M.jsonl           Cambrian: JSONL, rows with and without images
    wit/wit_v1.train.tsv                WIT rows; some captions describe another image
    flores/<lang>.devtest               Flores-200 style, line-aligned, eleven languages
    xstorycloze/xstorycloze.<lang>.eval.tsv
    mmmu/<Subject>/validation-00000-of-00001.parquet  MMMU schema, images as bytes
    truth/                              ground truth the tests check against (not read by the pipeline)

With `cfg.bad_rows`, a few malformed rows of every kind are planted (bad JSON, missing fields, an
image path with `../`, a missing or non-image picture, an empty Flores line, an impossible answer),
so that every quarantine path is exercised by the demo itself.
"""
from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import ToyWorld
from pipeline.lake import write_bytes_atomic, write_jsonl_atomic, write_text_atomic
from pipeline.languages import language
from pipeline.toy import lexicon as lx
from pipeline.toy.image_server import TOY_HOST
from pipeline.toy.scenes import Scene, jpeg_bytes, make_scenes

QA_KINDS = (("q_colour", "a_colour"), ("q_shape", "a_shape"), ("q_position", "a_position"), ("q_size", "a_size"))
MMMU_SUBJECTS = ("Art", "Design", "Geography", "Math")
MC = {"colour": lx.COLOURS, "shape": lx.SHAPES, "size": lx.SIZES, "position": lx.POSITIONS}


def say(kind: str, lang: str, scene: Scene, **override) -> str:
    slots = {**scene.slots(), **override}
    return lx.sentence(kind, lang, **{k: slots[k] for k in lx.KINDS[kind]})


def conversation(scene: Scene, lang: str, rng: random.Random, with_image: bool = True) -> list[dict]:
    """Two or three question-answer turns about one scene; the image tag opens the first question."""
    pairs = rng.sample(QA_KINDS + (("describe", "caption"),), k=rng.choice((2, 3)))
    turns = []
    for k, (q, a) in enumerate(pairs):
        question = say(q, lang, scene)
        if k == 0 and with_image:
            question = "<image>\n" + question
        turns += [{"from": "human", "value": question}, {"from": "gpt", "value": say(a, lang, scene)}]
    return turns


def coco_name(scene_id: int) -> str:
    return f"coco/train2017/{scene_id:012d}.jpg"


def _write_images(root: Path, scenes: list[Scene], seed: int) -> None:
    for s in scenes:
        data = jpeg_bytes(s, seed)
        write_bytes_atomic(root / "www" / "scenes" / f"{s.scene_id:05d}.jpg", data)
        write_bytes_atomic(root / "images" / coco_name(s.scene_id), data)


def _url_list(scenes: list[Scene], n: int, kind: str, rng: random.Random, broken: int, offset: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        s = scenes[(offset + i) % len(scenes)]
        rows.append({"url": f"{TOY_HOST}/scenes/{s.scene_id:05d}.jpg", "caption": say(kind, "eng_Latn", s)})
    faults = ("404", "truncated", "timeout")
    for k in range(broken):
        i = rng.randrange(len(rows))
        name = rows[i]["url"].rsplit("/", 1)[1]
        rows[i]["url"] = f"{TOY_HOST}/broken/{faults[k % 3]}/{name}"
    return pd.DataFrame(rows)


_SYLLABLES = ("ka", "lo", "mi", "nu", "ra", "se", "ti", "vo", "ze", "pu", "ba", "do", "fe", "gi", "ho", "ju")


def unique_name(i: int) -> str:
    """A made-up name of letters only, different for every i ("Kalomi", ...)."""
    parts = []
    while True:
        i, r = divmod(i, len(_SYLLABLES))
        parts.append(_SYLLABLES[r])
        if i == 0:
            break
        i -= 1
    return "".join(parts + ["n"]).capitalize()


def _llava(scenes, n, rng, bad: bool, root: Path, unique_texts: bool = False) -> list[dict]:
    rows = [{"id": f"{s.scene_id:012d}", "image": coco_name(s.scene_id),
             "conversations": conversation(s, "eng_Latn", rng)} for s in (scenes[i % len(scenes)] for i in range(n))]
    # the same scene can be drawn twice: ids must stay unique
    for i, r in enumerate(rows):
        r["id"] = f"{r['id']}_{i}"
        if unique_texts:  # a sentence no other row has, in every answer
            for k, turn in enumerate(r["conversations"]):
                if turn["from"] == "gpt":
                    turn["value"] += f" The painter was {unique_name(i * 4 + k)}."
    if bad:
        write_text_atomic(root / "images" / "coco" / "train2017" / "not_an_image.jpg", "<html>404</html>")
        rows += [
            {"id": "bad_no_conversations", "image": coco_name(0)},
            {"id": "bad_escape", "image": "../../../etc/passwd", "conversations": rows[0]["conversations"]},
            {"id": "bad_missing_image", "image": "coco/train2017/999999999999.jpg", "conversations": rows[0]["conversations"]},
            {"id": "bad_not_image", "image": "coco/train2017/not_an_image.jpg", "conversations": rows[0]["conversations"]},
            {"id": "bad_roles", "conversations": [{"from": "system", "value": "hi"}]},
        ]
    return rows


def _palo(scenes, n, rng, langs, bad: bool) -> list[dict]:
    rows = []
    for i in range(n):
        s, lang = scenes[(7 * i) % len(scenes)], langs[i % len(langs)]
        rows.append({"id": f"{lang}_{s.scene_id:012d}_{i}", "image": coco_name(s.scene_id),
                     "conversations": conversation(s, lang, rng)})
    if bad:
        rows.append({"id": "bad_empty", "conversations": []})
    return rows


def canonical(attr: str, choices: list[str], rng: random.Random) -> list[str]:
    """The options of a multiple-choice question in the fixed order of the attribute's values (lexicon order:
    red, green, blue, ...). Real benchmarks shuffle their options; the toy world does not, on purpose: for a
    64-wide, 2-layer Llama, matching what the image shows to a shuffled option list and naming that option's
    letter is a two-hop lookup it does not learn within the demo's minutes, while in a fixed order the letter
    follows from the value (and the options present). Applied alike to the toy Cambrian's rows, the toy
    Llama's instruct conversations and the toy MMMU. (Its effect alone was not measured: it went in while the
    stage-2 model was still image-blind.) The shuffle still draws from `rng`, so every corpus
    written after this one stays as it was."""
    rng.shuffle(choices)
    return sorted(choices, key=MC[attr].index)


def multiple_choice(scene: Scene, attr: str, rng: random.Random, lang: str = "eng_Latn") -> tuple[str, list[str], int]:
    """(question, options, index of the right one) about one attribute of a scene, as MMMU asks it."""
    values = list(MC[attr])
    rng.shuffle(values)
    right = scene.slots()[attr]
    choices = canonical(attr, values[:4] if right in values[:4] else values[:3] + [right], rng)
    return lx.sentence(f"mc_{attr}", lang), [lx.word(attr, v, lang) for v in choices], choices.index(right)


def mc_conversation(scene: Scene, rng: random.Random) -> list[dict]:
    """A multiple-choice question about the image with `(A) option` lines, answered `(B) option` (real
    Cambrian holds such rows from ScienceQA, AI2D, ...). The letters are protected by the translator's
    segmenter, so a translated row keeps them and translates the question and the options."""
    question, options, k = multiple_choice(scene, rng.choice(tuple(MC)), rng)
    letters = "ABCD"
    lines = "\n".join(f"({letters[j]}) {o}" for j, o in enumerate(options))
    return [{"from": "human", "value": f"<image>\n{question}\n{lines}"},
            {"from": "gpt", "value": f"({letters[k]}) {options[k]}"}]


def _cambrian(scenes, n, rng, bad: bool) -> list[str]:
    lines = []
    for i in range(n):
        # image rows (even i) walk every scene (7 is prime to the toy profile's 240), so the multiple-choice rows
        # teach reading attributes in general rather than a few scenes by heart
        s = scenes[(7 * (i // 2) + (i % 2) * 113) % len(scenes)]
        with_image = i % 2 == 0
        # half of the image rows are multiple-choice questions, as in the real Cambrian mix
        turns = mc_conversation(s, rng) if i % 4 == 0 else conversation(s, "eng_Latn", rng, with_image)
        row = {"id": f"cambrian_{i}", "conversations": turns}
        if with_image:
            row["image"] = coco_name(s.scene_id)
        elif i % 4 == 1:
            row["image"] = rng.choice(("", "None", "nan"))  # Cambrian's spellings of "no image"
        lines.append(json.dumps(row, ensure_ascii=False))
    if bad:
        lines.insert(3, '{"id": "cambrian_broken", "conversations": [')
        lines.append(json.dumps({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}))
    return lines


def _wit(scenes, n, rng, langs, mismatch: float, bad: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, truth = [], []
    iso = {code: language(code).iso for code in ("eng_Latn",) + tuple(langs)}
    for i in range(n):
        s = scenes[(5 * i + 1) % len(scenes)]
        lang = (("eng_Latn",) + tuple(langs))[i % (len(langs) + 1)]
        matched = rng.random() >= mismatch
        described = s
        while not matched and described is s:  # another scene, different in colour and shape (rarely a 2nd draw)
            described = next((o for o in rng.sample(scenes, 8) if o.colour != s.colour and o.shape != s.shape), s)
        rows.append({"language": iso[lang], "page_url": f"https://{iso[lang]}.wikipedia.org/wiki/Toy_{i}",
                     "image_url": f"{TOY_HOST}/scenes/{s.scene_id:05d}.jpg", "page_title": f"Toy {i}",
                     "section_title": "", "caption_reference_description": say("caption", lang, described),
                     "caption_attribution_description": "", "mime_type": "image/jpeg"})
        truth.append({"row": i, "matched": matched, "image_ok": True, "text_ok": True})
    if bad and n >= 12:
        # rows the WIT filter must catch, chosen without the rng (the corpora written after WIT stay as
        # they were): images the downloader cannot fetch (404, a truncated JPEG, a time-out), captions
        # read with the wrong encoding (mojibake), and stub captions (a bare word)
        for k, fault in enumerate(("404", "truncated", "timeout")):
            i = (2 * k + 1) * n // 6
            rows[i]["image_url"] = rows[i]["image_url"].replace("/scenes/", f"/broken/{fault}/")
            truth[i]["image_ok"] = False
        for start in (n // 12, 7 * n // 12):  # the next caption with non-ASCII letters (mojibake shows)
            i = next((j for j in range(start, n) if not rows[j]["caption_reference_description"].isascii()), start)
            caption = rows[i]["caption_reference_description"]
            rows[i]["caption_reference_description"] = caption.encode("utf-8").decode("latin-1")
            truth[i]["text_ok"] = False
        for i in (n // 3, 3 * n // 4):
            lang = (("eng_Latn",) + tuple(langs))[i % (len(langs) + 1)]
            rows[i]["caption_reference_description"] = lx.word("shape", scenes[(5 * i + 1) % len(scenes)].shape, lang)
            truth[i]["text_ok"] = False
    if bad:
        rows.append({**rows[0], "language": "xx", "page_url": "https://xx.wikipedia.org/wiki/Unknown"})
        rows.append({**rows[1], "caption_reference_description": "", "page_url": "https://en.wikipedia.org/wiki/NoCaption"})
    return pd.DataFrame(rows), pd.DataFrame(truth)


def _flores(rng, bad: bool) -> dict[str, list[str]]:
    corpus = lx.parallel_corpus()
    picked = [corpus[i] for i in sorted(rng.sample(range(len(corpus)), k=min(200, len(corpus))))]
    files = {lang: [row[lang] for row in picked] for lang in lx.LANGS}
    if bad:
        files["hin_Deva"][5] = ""
    return files


def _story(scene: Scene, rng: random.Random, lang: str, sid: str, answer: int, alt) -> dict:
    pos2, col2, col3, pos3 = alt
    right = say("now_at", lang, scene, colour=col2, position=pos2)
    wrong = say("now_at", lang, scene, colour=col3, position=pos3)
    return {
        "story_id": sid,
        "input_sentence_1": say("caption", lang, scene),
        "input_sentence_2": say("moves", lang, scene, position=pos2),
        "input_sentence_3": say("becomes", lang, scene, colour=col2),
        "input_sentence_4": say("grows" if scene.size == "small" else "shrinks", lang, scene),
        "sentence_quiz1": right if answer == 1 else wrong,
        "sentence_quiz2": wrong if answer == 1 else right,
        "answer_right_ending": str(answer),
    }


def _xstorycloze(scenes, n, rng, bad: bool) -> dict[str, pd.DataFrame]:
    plans = []
    for i in range(n):
        s = scenes[(11 * i + 2) % len(scenes)]
        pos2 = rng.choice([p for p in lx.POSITIONS if p != s.position])
        col2 = rng.choice([c for c in lx.COLOURS if c != s.colour])
        col3 = rng.choice([c for c in lx.COLOURS if c != col2])
        pos3 = rng.choice([p for p in lx.POSITIONS if p != pos2])
        plans.append((s, f"story-{i:04d}", rng.choice((1, 2)), (pos2, col2, col3, pos3)))
    out = {}
    for lang in lx.LANGS:
        rows = [_story(s, rng, lang, sid, ans, alt) for s, sid, ans, alt in plans]
        if bad and lang == "eng_Latn":
            rows.append({**rows[0], "story_id": "story-bad", "answer_right_ending": "3"})
        out[lang] = pd.DataFrame(rows)
    return out


def _mmmu(scenes, n, rng, seed: int, bad: bool) -> dict[str, list[dict]]:
    by_subject: dict[str, list[dict]] = {s: [] for s in MMMU_SUBJECTS}
    for i in range(n):
        s = scenes[(13 * i + 4) % len(scenes)]
        subject = MMMU_SUBJECTS[i % len(MMMU_SUBJECTS)]
        attr = ("colour", "shape", "position", "size")[i % 4]
        values = list(MC[attr])
        rng.shuffle(values)
        choices = canonical(attr, values[:4] if s.slots()[attr] in values[:4] else values[:3] + [s.slots()[attr]], rng)
        is_open = i % 10 == 9
        options = [] if is_open else [lx.word(attr, v, "eng_Latn") for v in choices]
        answer = lx.word(attr, s.slots()[attr], "eng_Latn") if is_open else "ABCD"[choices.index(s.slots()[attr])]
        rows = by_subject[subject]
        rows.append({
            "id": f"validation_{subject}_{len(rows) + 1}",
            "question": "<image 1>\n" + lx.sentence(f"mc_{attr}", "eng_Latn"),
            "options": str(options),
            "explanation": "",
            "image_1": {"bytes": jpeg_bytes(s, seed), "path": f"{s.scene_id:05d}.jpg"},
            **{f"image_{k}": None for k in range(2, 8)},
            "img_type": str(["Diagrams"]),
            "answer": answer,
            "topic_difficulty": "Easy",
            "question_type": "open" if is_open else "multiple-choice",
            "subfield": "Shapes",
        })
    if bad:
        good = by_subject["Art"][0]
        by_subject["Art"] += [
            {**good, "id": f"validation_Art_{len(by_subject['Art']) + 1}", "options": "['red', 'blue'"},
            {**good, "id": f"validation_Art_{len(by_subject['Art']) + 2}", "answer": "F"},
        ]
    return by_subject


def _mmmu_schema() -> pa.Schema:
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    fields = [("id", pa.string()), ("question", pa.string()), ("options", pa.string()), ("explanation", pa.string())]
    fields += [(f"image_{k}", image) for k in range(1, 8)]
    fields += [(c, pa.string()) for c in ("img_type", "answer", "topic_difficulty", "question_type", "subfield")]
    return pa.schema(fields)


def _write_parquet(path: Path, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    write_bytes_atomic(path, buf.getvalue())


def build_world(folder: str | Path, cfg: ToyWorld, languages: tuple[str, ...] = lx.TARGET_LANGS) -> dict[str, int]:
    """Write the whole toy world under `folder`; returns the number of rows written per corpus."""
    root = Path(folder)
    rng = random.Random(cfg.seed)
    scenes = make_scenes(cfg.seed, cfg.scenes)
    _write_images(root, scenes, cfg.seed)
    counts: dict[str, int] = {"scenes": len(scenes)}

    half = cfg.broken_urls // 2
    for name, n, kind, broken, offset in (("cc_sbu", cfg.cc_sbu_pairs, "caption", half, 0),
                                          ("laion", cfg.laion_pairs, "there_is", cfg.broken_urls - half, 97)):
        df = _url_list(scenes, n, kind, rng, broken, offset)
        _write_parquet(root / name / "urls.parquet", pa.Table.from_pandas(df, preserve_index=False))
        counts[name] = len(df)

    llava = _llava(scenes, cfg.llava_rows * cfg.scale, rng, cfg.bad_rows, root, cfg.unique_texts)
    write_text_atomic(root / "llava" / "llava_instruct.json", json.dumps(llava, ensure_ascii=False, indent=1))
    palo = _palo(scenes, cfg.palo_rows * cfg.scale, rng, languages, cfg.bad_rows)
    write_text_atomic(root / "palo" / "palo_multilingual.json", json.dumps(palo, ensure_ascii=False, indent=1))
    cambrian = _cambrian(scenes, cfg.cambrian_rows * cfg.scale, rng, cfg.bad_rows)
    write_text_atomic(root / "cambrian" / "Cambrian7M.jsonl", "\n".join(cambrian) + "\n")
    counts.update(llava_instruct=len(llava), palo=len(palo), cambrian=len(cambrian))

    wit, truth = _wit(scenes, cfg.wit_rows, rng, languages, cfg.wit_mismatch_fraction, cfg.bad_rows)
    write_text_atomic(root / "wit" / "wit_v1.train.tsv", wit.to_csv(sep="\t", index=False))
    _write_parquet(root / "truth" / "wit.parquet", pa.Table.from_pandas(truth, preserve_index=False))
    counts["wit"] = len(wit)

    flores = _flores(rng, cfg.bad_rows)
    for lang, lines in flores.items():
        write_text_atomic(root / "flores" / f"{lang}.devtest", "\n".join(lines) + "\n")
    counts["flores"] = len(flores["eng_Latn"])

    stories = _xstorycloze(scenes, cfg.xstorycloze_stories, rng, cfg.bad_rows)
    for lang, df in stories.items():
        write_text_atomic(root / "xstorycloze" / f"xstorycloze.{lang}.eval.tsv", df.to_csv(sep="\t", index=False))
    counts["xstorycloze"] = sum(len(df) for df in stories.values())

    mmmu = _mmmu(scenes, cfg.mmmu_questions, rng, cfg.seed, cfg.bad_rows)
    for subject, rows in mmmu.items():
        _write_parquet(root / "mmmu" / subject / "validation-00000-of-00001.parquet",
                       pa.Table.from_pylist(rows, schema=_mmmu_schema()))
    counts["mmmu"] = sum(len(r) for r in mmmu.values())
    write_jsonl_atomic(root / "truth" / "counts.jsonl", [counts])
    return counts


MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def instruct_conversations(n: int, seed: int, langs: tuple[str, ...] = lx.LANGS,
                           scene_lang: str | None = "eng_Latn", mc_fraction: float = 0.5,
                           mc_langs: tuple[str, ...] = ("eng_Latn",)) -> list[list[dict]]:
    """Text-only chat conversations that make the toy Llama an *instruct* model (as Llama-3-8B-Instruct is
    for the paper): the scene is given in words at the start of the user turn ("A big red square at the top
    left."), then questions are asked about it and answered. Open questions come in all of `langs`; a
    `mc_fraction` of the conversations are multiple-choice questions with `(A) option` lines (half of them
    with MMMU's instruction line), answered `(B) option`, asked only in `mc_langs`. The scenes are random
    attribute draws (seed namespace "instruct"), never the world's images or its MMMU rows. The VLM stages
    then need only learn to read the scene from image tokens instead.

    English-only multiple choice is the English-centric instruction tuning of Llama-3-Instruct, which is
    what the paper's translated instruction data (CI M) works against: measured text-only on 80 questions
    (bench/toy_multilingual_mc.py), this toy Llama answers MMMU-style questions right 98% of the time in
    English and 26-54% in French, Chinese, Hindi and Arabic, often naming the English option. Multiple
    choice in every language lifted those to 71-88% but English to only 64% at the same training length
    (one ad-hoc run), and leaves translated Cambrian in stage 2 nothing to teach.

    The scene is told in `scene_lang` (English, the pivot, as Llama-3 is English-centric) whatever the
    language asked in (None: in that language). Measured: with the scene told in the question's language, a
    multilingual stage 2 stays image-blind (the image tokens would have to look like a different word per
    language, and the languages' gradients cancel: English-only learns to read the image in ~200 steps and
    forgets it within 100 multilingual ones); told in English, image tokens have one target in every language."""
    rng = random.Random(f"instruct:{seed}")
    out = []
    n_mc = 0
    for i in range(n):
        scene = make_scenes(rng.randrange(1 << 30), 1)[0]
        lang = langs[i % len(langs)]
        scene_text = say("caption", scene_lang or lang, scene)
        if rng.random() < mc_fraction:
            lang = mc_langs[n_mc % len(mc_langs)]
            n_mc += 1
            question, options, k = multiple_choice(scene, rng.choice(tuple(MC)), rng, lang)
            if rng.random() < 0.5:
                question = "<image 1>\n" + question  # MMMU keeps its image tags in the text
            lines = "".join(f"({'ABCD'[j]}) {o}\n" for j, o in enumerate(options))
            prompt = f"{question}\n{lines}\n{MC_INSTRUCTION}" if rng.random() < 0.5 else f"{question}\n{lines.rstrip()}"
            turns = [{"from": "human", "value": f"{scene_text}\n{prompt}"},
                     {"from": "gpt", "value": f"({'ABCD'[k]}) {options[k]}"}]
        else:
            turns = conversation(scene, lang, rng, with_image=False)
            turns[0] = {**turns[0], "value": f"{scene_text}\n{turns[0]['value']}"}
        out.append(turns)
    return out
