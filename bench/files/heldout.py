"""Held-out retrieval evaluation: six longer documents (two Russian, two Chinese, two English, of
kinds users attach: a lease, an equipment manual, a product manual with FAQ, a company policy, a
research paper, an API guide; 15–25 chunks each) and 54 questions, written after the model
and the lexical weight were chosen and not used to choose anything.

Each question names its document, a phrase that only the answering chunk holds (checked by
``tests/bench/test_evalset.py`` with the default chunking), and its kind:

- ``literal``: same language as the document, sharing its words;
- ``paraphrase``: same language, few or none of the passage's words;
- ``cross``: another language than the document (a third of the questions).

The documents live in ``heldout/*.txt``, pages separated by a line ``=====``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).parent / "heldout"
PAGE_BREAK = "\n=====\n"
KINDS = ("literal", "paraphrase", "cross")


def _pages(name: str) -> list[str]:
    return [p.strip() for p in (HERE / name).read_text(encoding="utf-8").split(PAGE_BREAK)]


DOCUMENTS: dict[str, list[str]] = {
    name: _pages(name)
    for name in (
        "arenda-ru.txt",
        "kompressor-ru.txt",
        "saodi-shouce-zh.txt",
        "caigou-zhidu-zh.txt",
        "irrigation-paper-en.txt",
        "api-guide-en.txt",
    )
}


class Question(NamedTuple):
    document: str
    question: str
    phrase: str  # only the answering chunk holds it
    kind: str  # one of KINDS


_L, _P, _X = KINDS

QUESTIONS: list[Question] = [
    # Russian lease of a café's premises
    Question("arenda-ru.txt", "Какова площадь арендуемого помещения?", "86,4 квадратного", _L),
    Question("arenda-ru.txt", "Какой размер обеспечительного платежа?", "224 000 рублей", _L),
    Question("arenda-ru.txt", "Какая пеня за просрочку арендной платы?", "0,2 процента", _L),
    Question(
        "arenda-ru.txt",
        "Есть ли у кофейни льготный период, когда платить за помещение не нужно?",
        "не взимается",
        _P,
    ),
    Question(
        "arenda-ru.txt",
        "На сколько максимум могут поднять стоимость помещения за год?",
        "не более чем на 7 процентов. Об увеличении Арендодатель уведомляет Арендатора "
        "письменно не менее чем за два месяца. Первое",
        _P,
    ),
    Question("arenda-ru.txt", "Где можно оставить машину?", "номерами 11 и 12", _P),
    Question(
        "arenda-ru.txt",
        "Until what time in the morning can goods be unloaded at the café's building?",
        "до 10:00 утра",
        _X,
    ),
    Question(
        "arenda-ru.txt",
        "How much notice must the tenant give to end the lease early?",
        "не менее чем за три месяца",
        _X,
    ),
    Question(
        "arenda-ru.txt",
        "租户需要购买多少金额的责任保险？",
        "за свой счёт гражданскую ответственность перед третьими лицами на сумму не менее "
        "3 000 000 рублей",
        _X,
    ),
    # Russian manual of a screw compressor
    Question("kompressor-ru.txt", "Какое масло заливать в компрессор ВК-15?", "ISO VG 46", _L),
    Question("kompressor-ru.txt", "Что означает код ошибки E03?", "Код E03", _L),
    Question(
        "kompressor-ru.txt",
        "Каким должно быть сечение питающего кабеля?",
        "квалифицированный электрик. Сечение медного питающего кабеля должно быть не менее 6 "
        "квадратных миллиметров",
        _L,
    ),
    Question(
        "kompressor-ru.txt",
        "Какой межсервисный интервал для смазки?",
        "каждые 4000 часов работы",
        _P,
    ),
    Question(
        "kompressor-ru.txt",
        "Насколько громко работает агрегат?",
        "Уровень звукового давления на расстоянии одного метра не превышает 68 децибел",
        _P,
    ),
    Question(
        "kompressor-ru.txt",
        "Можно ли ставить аппарат в неотапливаемом гараже зимой?",
        "ВК-15Т с подогревателем",
        _P,
    ),
    Question(
        "kompressor-ru.txt",
        "At what screw block outlet temperature does the compressor stop for overheating?",
        "превысила 110 градусов",
        _X,
    ),
    Question(
        "kompressor-ru.txt",
        "How long is the warranty on the compressor's screw element?",
        "расширенная гарантия 5 лет при использовании только оригинального масла. Гарантия не",
        _X,
    ),
    Question(
        "kompressor-ru.txt",
        "压缩机的排气量是多少？",
        "Производительность компрессора составляет",
        _X,
    ),
    # Chinese robot vacuum manual with FAQ
    Question("saodi-shouce-zh.txt", "尘盒容量是多少？", "四百五十毫升", _L),
    Question("saodi-shouce-zh.txt", "机器支持五吉赫兹的无线网络吗？", "不支持五吉赫兹", _L),
    Question("saodi-shouce-zh.txt", "错误五表示什么？", "错误五表示主刷被缠绕", _L),
    Question("saodi-shouce-zh.txt", "晚上用的时候声音有多大？", "五十五分贝", _P),
    Question("saodi-shouce-zh.txt", "电快用完时它会怎么做？", "百分之十五时", _P),
    Question(
        "saodi-shouce-zh.txt", "清洗过的过滤部件要等多长时间才能装回？", "晾干二十四小时以上", _P
    ),
    Question("saodi-shouce-zh.txt", "How many maps can the robot vacuum store?", "四张地图", _X),
    Question(
        "saodi-shouce-zh.txt",
        "Какой гарантийный срок на аккумулятор робота-пылесоса?",
        "电池和充电座的保修期",
        _X,
    ),
    Question(
        "saodi-shouce-zh.txt",
        "What is the customer service hotline number for the robot vacuum?",
        "四零零八八六二三一五七",
        _X,
    ),
    # Chinese company procurement policy
    Question("caigou-zhidu-zh.txt", "预计金额一百万元以上的采购用什么方式？", "必须公开招标", _L),
    Question("caigou-zhidu-zh.txt", "投标保证金是多少？", "项目预算的百分之二", _L),
    Question("caigou-zhidu-zh.txt", "供应商考核低于多少分会被移出名录？", "低于六十分", _L),
    Question(
        "caigou-zhidu-zh.txt",
        "签合同后能先付给卖家多少钱？",
        "不得超过合同金额的百分之三十",
        _P,
    ),
    Question(
        "caigou-zhidu-zh.txt",
        "采购员多久要换岗位？",
        "关键岗位人员，原则上每三年轮岗一次。第三十条",
        _P,
    ),
    Question(
        "caigou-zhidu-zh.txt", "发现有人收回扣，可以向哪里反映？", "jubao@huayuan-tech.cn", _P
    ),
    Question("caigou-zhidu-zh.txt", "How long must procurement records be kept?", "不少于十年", _X),
    Question(
        "caigou-zhidu-zh.txt",
        "Who approves a purchase of 200,000 yuan?",
        "五十万元以下的，由分管副总经理审批",
        _X,
    ),
    Question(
        "caigou-zhidu-zh.txt",
        "Какой вес цены при оценке заявок в тендере?",
        "价格分占百分之四十",
        _X,
    ),
    # English research paper on greenhouse irrigation
    Question(
        "irrigation-paper-en.txt",
        "How much water did the sensor treatment use per square metre?",
        "593 litres",
        _L,
    ),
    Question(
        "irrigation-paper-en.txt",
        "What set point triggered an irrigation pulse in the sensor treatment?",
        "below a set point of 62 percent",
        _L,
    ),
    Question(
        "irrigation-paper-en.txt",
        "Which grant funded the study?",
        "grant number RWIF-2021-0448. We thank",
        _L,
    ),
    Question(
        "irrigation-paper-en.txt",
        "Did the tomatoes taste sweeter with sensors?",
        "5.3 against 4.9",
        _P,
    ),
    Question(
        "irrigation-paper-en.txt",
        "How many of the moisture probes broke during the trial?",
        "Two of the 48 probes",
        _P,
    ),
    Question(
        "irrigation-paper-en.txt",
        "What share of runoff should growers target when they start?",
        "aiming for about 20 percent drainage",
        _P,
    ),
    Question(
        "irrigation-paper-en.txt",
        "Какая плотность посадки растений использовалась в опыте?",
        "2.5 plants per square metre",
        _X,
    ),
    Question(
        "irrigation-paper-en.txt", "试验站的水价是每立方米多少？", "1.85 euros per cubic metre", _X
    ),
    Question("irrigation-paper-en.txt", "这项研究的通讯作者是谁？", "Tomas Verhoeven", _X),
    # English API guide of a shipping service
    Question("api-guide-en.txt", "How long does a rate stay valid?", "valid for 15 minutes", _L),
    Question(
        "api-guide-en.txt", "What is the rate limit for sandbox keys?", "25 requests per second", _L
    ),
    Question(
        "api-guide-en.txt",
        "How long is the grace period when a key is rolled?",
        "grace period of 24 hours",
        _L,
    ),
    Question("api-guide-en.txt", "What is the heaviest package I can send?", "31.5 kilograms", _P),
    Question(
        "api-guide-en.txt",
        "How do I avoid paying twice when a timed-out call is sent again?",
        "Idempotency-Key header",
        _P,
    ),
    Question(
        "api-guide-en.txt",
        "How can my server tell that a notification really came from Parcelo?",
        "HMAC-SHA256 signature of the timestamp joined to the raw request body, computed with "
        "the endpoint's signing secret. Compute",
        _P,
    ),
    Question(
        "api-guide-en.txt",
        "До какого времени нужно заказать курьера, чтобы он приехал в тот же день?",
        "before 14:00",
        _X,
    ),
    Question("api-guide-en.txt", "沙盒环境的数据多久清空一次？", "every Sunday at 03:00", _X),
    Question(
        "api-guide-en.txt", "Сколько стоит вызов курьера для забора посылок?", "3.90 euros", _X
    ),
]
