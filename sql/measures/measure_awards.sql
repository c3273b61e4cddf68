-- measure_awards: per school and year, contest awards from the one-row-per-award file:
-- national skills-contest medals (students and teachers together, as the report counts
-- them) and national and provincial awards by participant.
-- Output grain: one row per (year, school_code, measure_id).
with awards as (
    select * from curated_awards
),

per_school as (
    select
        year,
        school_code,
        count(*) filter (
            where contest_type = '技能大赛' and contest_level = '国家' and award_grade = '金'
        )::double as national_skills_gold_count,
        count(*) filter (
            where contest_type = '技能大赛' and contest_level = '国家' and award_grade = '银'
        )::double as national_skills_silver_count,
        count(*) filter (
            where contest_type = '技能大赛' and contest_level = '国家' and award_grade = '铜'
        )::double as national_skills_bronze_count,
        count(*) filter (where contest_level = '国家' and participant_type = '学生')::double
            as national_student_award_count,
        count(*) filter (where contest_level = '国家' and participant_type = '教师')::double
            as national_teacher_award_count,
        count(*) filter (where contest_level = '省' and participant_type = '学生')::double
            as provincial_student_award_count,
        count(*) filter (where contest_level = '省' and participant_type = '教师')::double
            as provincial_teacher_award_count,
        -- Optional columns (2024 contract): the event hosted in the city, and the moral and
        -- political education (德育与思政) events, national level, any contest type.
        count(*) filter (
            where contest_level = '国家' and coalesce(is_hosted_event, false) and award_grade = '金'
        )::double as hosted_event_gold_count,
        count(*) filter (
            where contest_level = '国家' and coalesce(is_hosted_event, false) and award_grade = '银'
        )::double as hosted_event_silver_count,
        count(*) filter (
            where contest_level = '国家' and coalesce(is_hosted_event, false) and award_grade = '铜'
        )::double as hosted_event_bronze_count,
        count(*) filter (
            where contest_level = '国家' and event_category = '德育与思政' and award_grade = '金'
        )::double as national_moral_education_gold_count,
        count(*) filter (
            where contest_level = '国家' and event_category = '德育与思政' and award_grade = '银'
        )::double as national_moral_education_silver_count
    from awards
    group by year, school_code
),

final as (
    unpivot per_school
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
