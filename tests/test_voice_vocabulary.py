"""Catalog-aware Mandarin STT (voice/vocabulary.py): the prompt and the words come from the merchant's
catalog; Simplified output; homophones of catalog words resolved, real catalog words never rewritten."""

from __future__ import annotations

from knowledge.schema import Product
from voice.stt import LocalWhisperSTTService
from voice.vocabulary import PROMPT_MAX_CHARS, CatalogVocabulary, product_terms, to_simplified


def catalog() -> list[Product]:
    """A kitchen shop the code was never written for."""
    return [
        Product(sku="K1", name="禾木 铸铁珐琅锅 24cm", category="锅具", aliases=["珐琅锅", "红锅"], price=399),
        Product(sku="K2", name="禾木 不粘煎锅 28cm", category="锅具", aliases=["煎锅"], series="轻食系列", price=159),
        Product(sku="K3", name="禾木 陶瓷刀 三件套", category="刀具", aliases=["陶瓷刀"], price=89),
        Product(sku="K4", name="禾木 蓝色马克杯", category="杯具", aliases=["蓝杯"], price=39),
        Product(sku="K5", name="禾木 白色马克杯", category="杯具", aliases=["白杯"], price=39),
    ]


def test_terms_and_prompt_come_from_the_catalog():
    terms = product_terms(catalog())
    assert "铸铁珐琅锅" in terms and "珐琅锅" in terms and "轻食系列" in terms
    assert "禾木" not in terms and not any("24cm" in t or "28" in t for t in terms)  # brand and sizes dropped
    # categories take turns: the first words cover pans, knives and cups
    assert set(terms[:3]) == {"铸铁珐琅锅", "陶瓷刀", "蓝色马克杯"}
    v = CatalogVocabulary(terms)
    assert v.prompt.startswith("以下是普通话") and "陶瓷刀" in v.prompt and len(v.prompt) <= PROMPT_MAX_CHARS
    big = CatalogVocabulary([f"商品{i:03d}号" for i in range(200)])
    assert len(big.prompt) <= PROMPT_MAX_CHARS


def test_simplified_and_homophones_resolved_but_catalog_words_kept():
    v = CatalogVocabulary.from_products(catalog())
    assert to_simplified("這個煎鍋多少錢") == "这个煎锅多少钱"
    assert v.resolve("发郎锅多少钱") == ("珐琅锅多少钱", [("发郎锅", "珐琅锅")])
    assert v.resolve("陶词刀锋利吗")[0] == "陶瓷刀锋利吗"
    assert v.resolve("白色马克杯多少钱") == ("白色马克杯多少钱", [])  # a sibling's word is not a typo
    assert v.resolve("朱铁珐琅锅多少钱")[0] == "铸铁珐琅锅多少钱"  # the alias it holds (珐琅锅) is kept
    assert v.resolve("有没有优惠券") == ("有没有优惠券", [])
    assert v.resolve("how much") == ("how much", [])


def test_whisper_service_postprocesses_mandarin_only():
    from types import SimpleNamespace

    v = CatalogVocabulary.from_products(catalog())
    zh = SimpleNamespace(_lang="zh", vocabulary=v, fixes=[])  # (the service itself loads the model)
    assert LocalWhisperSTTService.postprocess(zh, "發郎鍋還有貨嗎") == "珐琅锅还有货吗"
    assert zh.fixes == [("发郎锅", "珐琅锅")]
    en = SimpleNamespace(_lang="en", vocabulary=v, fixes=[])
    assert LocalWhisperSTTService.postprocess(en, "How much?") == "How much?"


def test_a_transcript_naming_no_product_gets_the_closest_longer_word():
    v = CatalogVocabulary.from_products(catalog())
    # half a syllable off (guo → ge): too far for the homophone pass, near enough when nothing else is named
    assert v.resolve("不粘煎各好用吗") == ("不粘煎锅好用吗", [("不粘煎各", "不粘煎锅")])
    assert v.resolve("珐琅锅和不粘煎各哪个好")[0] == "珐琅锅和不粘煎各哪个好"  # a product is named: left alone
    assert v.resolve("我很期待今晚的直播") == ("我很期待今晚的直播", [])
    assert v.resolve("多少钱啊") == ("多少钱啊", [])  # two-character words are never guessed loosely


def test_a_transcript_naming_no_product_is_decoded_again_with_the_words_it_sounds_like():
    v = CatalogVocabulary.from_products(catalog())
    assert v.reprompt("发郎锅多少钱") is None  # resolved: a product is named
    assert v.reprompt("有没有优惠券") is None  # nothing in the catalog sounds like it
    again = v.reprompt("见各好用吗")  # ge ~ guo: too far to rewrite, near enough to ask Whisper again
    assert again is not None and again.startswith(v.prompt.split("商品有")[0]) and "煎锅" in again
    assert v.sound_alikes("见各好用吗")[0] == "煎锅"
    # the second decoding is kept when it names a product and sounds like the first
    assert v.choose(["见各好用吗", "煎锅好用吗"]) == ("煎锅好用吗", [("见各好用吗", "煎锅好用吗")])
    assert v.choose(["见各好用吗", "陶瓷刀多少钱"])[0] == "见各好用吗"  # another question: not taken
    assert v.choose(["見各好用嗎"]) == ("见各好用吗", [])
    assert v.choose(["", "煎锅"]) == ("", [])
